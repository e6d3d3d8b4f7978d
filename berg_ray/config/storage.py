"""Storage, video decoding and release download constants (berg_ray.storage, berg_ray.sweep.video,
berg_ray.download)."""

# Storage (berg_ray.storage): S3 client timeouts and retries. Access checks fail fast; data IO retries longer.
S3_CONNECT_TIMEOUT_S = 3.0
S3_READ_TIMEOUT_S = 60.0
S3_MAX_ATTEMPTS = 5  # total attempts per request for data IO (botocore "standard" retry mode)
S3_CHECK_MAX_ATTEMPTS = 2  # total attempts per request in check_access, so a dead endpoint fails in seconds
S3_MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024  # larger writes use multipart upload (visible only on completion)
S3_DEFAULT_REGION = "us-east-1"  # when neither the options nor the AWS config name one (S3-compatible stores)

# Video decoding (berg_ray.sweep.video).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_VIDEO_KEY = "video"  # array name looked up in a multi-array .npz
NPZ_STIMULUS_KEY = "stimulus"  # the same, first: the name of the HTTP body's member, beside behaviour members

# --- Download and S3 releases (berg_ray.download): `berg-ray download` and `--berg-dir s3://...` ---

# The two public sources of the trained release, read without credentials (unsigned requests).
BERG_BUCKET = "brain-encoding-response-generator"  # BERG's bucket; the release is at RELEASE_SUBDIR inside it
MICRONS_BUCKET = "bossdb-open-data"
MICRONS_KEY = "iarpa_microns/minnie/functional_data/foundation_model/foundational_model_weights_and_metadata_v1.zip"
MICRONS_MD5 = "58fcac4b31ad2902c81e339432cec787"  # published checksum of the MICrONS archive
DOWNLOAD_RANGE_BYTES = 32 * 1024 * 1024  # one ranged GET fetches at most this much (the resume granularity)
# Size bounds of release files (berg_ray.download.bounds): a file's bound is its known content (tensor elements x 4
# bytes, metadata numbers x 8 bytes, CSV rows x DOWNLOAD_CSV_ROW_BYTES) x DOWNLOAD_SIZE_MARGIN
# + DOWNLOAD_SIZE_SLACK_BYTES; `berg-ray download --max-file-bytes / --max-total-bytes` override them.
DOWNLOAD_SIZE_MARGIN = 1.5  # headroom over the content: a larger file is not a release file (a zip bomb, junk)
DOWNLOAD_SIZE_SLACK_BYTES = 1024 ** 2  # torch.save's zip and pickle framing (~0.3 kB per tensor), .npy headers
DOWNLOAD_METADATA_UNIT_VALUES = 17  # numbers per unit in a metadata .npy besides its field masks (model card)
DOWNLOAD_CSV_ROW_BYTES = 64  # one row of scans.csv or units.csv: 3-4 integers and a CRLF
DOWNLOAD_STAGING_DIR = ".partial"  # under the target directory: partial and unverified files, never loaded
DOWNLOAD_STATE_FILE = ".berg-ray-download.json"  # under the target directory: what was installed from where
CACHE_ENV = "BERG_RAY_CACHE"  # node-local cache of s3:// releases; default: $XDG_CACHE_HOME/berg_ray
CACHE_FETCH_LOG = ".fetch-log.jsonl"  # in a cached release: one line per process that resolved it (GETs made)
