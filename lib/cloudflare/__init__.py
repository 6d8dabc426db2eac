"""Cloudflare targets of the publish step: the documented limits (``limits``), the target protocol both the
embedded local target and the real services implement (``target``), and the REST/S3 clients."""
