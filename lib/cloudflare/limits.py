"""Every documented Cloudflare limit the publish step obeys, in one place, with its source.

Source: Cloudflare developer docs and the official API schema, late 2026, as summarised in
``shared/reference/cloudflare-api.md``. Batch sizes are derived from these numbers, never typed elsewhere.
"""

from __future__ import annotations

# -- REST API (all services) -------------------------------------------------------------------
# "Global rate limit: 1200 requests / 5 minutes per user or token", 429 (code 971) with retry-after.
API_REQUESTS_PER_WINDOW = 1200
API_WINDOW_SECONDS = 300
API_RATE_LIMIT_ERROR_CODE = 971

# -- D1 ----------------------------------------------------------------------------------------
D1_MAX_BOUND_PARAMETERS = 100          # per statement
D1_MAX_STATEMENT_BYTES = 100_000       # per SQL statement (SQLITE_TOOBIG above)
D1_MAX_VALUE_BYTES = 2_000_000         # per string / BLOB / row
D1_MAX_COLUMNS = 100                   # per table
D1_MAX_DATABASE_BYTES = 10_000_000_000  # 10 GB per database (paid plan)
D1_REQUEST_SECONDS = 30                # per request; a whole batch shares it
D1_MAX_IMPORT_FILE_BYTES = 5_000_000_000  # per import file (wrangler d1 execute --file)
D1_ERROR_CODE = 7500                   # "too many SQL variables", "statement too long"

# -- Vectorize v2 --------------------------------------------------------------------------------
VECTORIZE_MAX_VECTORS_PER_UPSERT = 5000      # REST API (a Worker binding: 1000)
VECTORIZE_MAX_UPSERT_BYTES = 100_000_000     # 100 MB body
VECTORIZE_MAX_ID_BYTES = 64
VECTORIZE_MAX_METADATA_BYTES = 10 * 1024     # 10 KiB per vector
VECTORIZE_MAX_VECTORS_PER_INDEX = 10_000_000
VECTORIZE_MAX_METADATA_INDEXES = 10
VECTORIZE_MAX_DIMENSIONS = 1536
VECTORIZE_MAX_TOP_K = 100
VECTORIZE_MAX_TOP_K_WITH_VALUES_OR_METADATA = 20
VECTORIZE_INDEXED_STRING_PREFIX_BYTES = 64
VECTORIZE_PARSE_ERROR_CODE = 40023
# Not documented for delete_by_ids: assumed to be the upsert limit, the largest batch the API is known to take.
VECTORIZE_MAX_IDS_PER_DELETE = VECTORIZE_MAX_VECTORS_PER_UPSERT

# -- Workers KV --------------------------------------------------------------------------------
KV_MAX_PAIRS_PER_BULK = 10_000
KV_MAX_BULK_BYTES = 100_000_000              # 100 MB per request
KV_MAX_KEYS_PER_BULK_DELETE = 10_000         # POST …/bulk/delete
KV_MAX_KEY_BYTES = 512
KV_MAX_VALUE_BYTES = 25 * 1024 * 1024        # 25 MiB
KV_MAX_METADATA_BYTES = 1024
KV_MIN_EXPIRATION_TTL = 60                   # seconds
KV_MAX_KEYS_PER_BULK_DELETE = 10_000         # POST …/bulk/delete

# -- R2 (S3 API) -------------------------------------------------------------------------------
R2_MIN_PART_BYTES = 5 * 1024 * 1024          # every part but the last, all the same size
R2_MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
R2_MAX_PARTS = 10_000
R2_MAX_KEY_BYTES = 1024
R2_MAX_KEYS_PER_DELETE = 1000                # S3 DeleteObjects (R2 implements the S3 limit)

# -- Workers (the consumer) ----------------------------------------------------------------------
WORKER_MEMORY_BYTES = 128 * 1024 * 1024      # why the R2 cold tier is sharded (one shard per request)
