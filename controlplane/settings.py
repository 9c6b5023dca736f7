"""controlplane settings: one module, driven by the environment.

Two modes share this file. With no environment set the project runs embedded: SQLite in `var/`, a local
memory cache and kombu's filesystem broker, so `make run` needs no external service. Setting
`DATABASE_URL` switches to production mode, which then requires `SECRET_KEY` and `REDIS_URL` (the shared
cache that rate limits must be counted in) and defaults the Celery broker to Redis.
Every value is read through `controlplane.env`, which raises `ImproperlyConfigured` on a bad one.
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_networks,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env_str("DATABASE_URL")
PRODUCTION = DATABASE_URL is not None
REDIS_URL = env_str("REDIS_URL")
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL is required when DATABASE_URL is set (production mode).")


def _embedded_secret(name: str, generate) -> str:  # type: ignore[no-untyped-def]
    """Read a generated secret from `var/`, creating it (mode 0600) on first use."""
    path = VAR_DIR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate())
    return path.read_text().strip()


if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY", required=True)
else:
    SECRET_KEY = env_str("SECRET_KEY") or _embedded_secret("secret_key", lambda: secrets.token_urlsafe(50))

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # The admin's modules are imported by urls.py (admin.autodiscover()), only in processes that serve
    # URLs: Celery workers and beat never load them.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "controlplane",
    "controlplane.access",
    "controlplane.observability",
    "controlplane.delivery",
    "controlplane.events",
    "registry",
    "configstore",
    "pipelines",
    "monitoring",
]

MIDDLEWARE = [
    "controlplane.observability.middleware.RequestTracingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin CSS/JS, Swagger UI) in every mode, from the same process (issue #10, point 7).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "controlplane.observability.middleware.ApiProblemMiddleware",
    "controlplane.inputs.InputBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "controlplane.fastpaths.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
SQLITE_PATH = Path(env_str("CONTROLPLANE_SQLITE_PATH", str(VAR_DIR / "controlplane.sqlite3")))
if PRODUCTION:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME", "test_controlplane")
else:
    # Web, worker and beat share this file: WAL lets readers run beside one writer, IMMEDIATE takes the
    # write lock at BEGIN (no lock-upgrade deadlocks) and the timeout waits instead of failing.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory, so that a worker started by an integration test sees the same data.
            "TEST": {"NAME": env_str("TEST_DATABASE_NAME", str(VAR_DIR / "test.sqlite3"))},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and rate limits -----------------------------------------------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "cp"),
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                # Errors must surface: a rate limit that silently stops counting is a security hole.
                "IGNORE_EXCEPTIONS": False,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "controlplane"}}

RATELIMIT_DEFAULT = env_rate("RATELIMIT_DEFAULT", "600/m")
RATELIMIT_USE_CACHE = "default"
# Admin sign-in: failed attempts allowed per window, per client address and per user name
# (controlplane.access.login_throttle); counted on the shared cache, so across every web process.
ADMIN_LOGIN_RATE_CLIENT = env_rate("ADMIN_LOGIN_RATE_CLIENT", "20/10m")
ADMIN_LOGIN_RATE_USER = env_rate("ADMIN_LOGIN_RATE_USER", "10/15m")
# Web processes learn the API-key generation from the coherence listener (no Redis round trip per
# request); false = read it in every request's round trip instead (controlplane.access.keycache).
COHERENCE_LISTENER = env_bool("COHERENCE_LISTENER", True)
# Embedded mode has one web process, so a local-memory counter is exact there; the checks below
# only make sense for a shared cache.
SILENCED_SYSTEM_CHECKS = [] if REDIS_URL else ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "celery"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL if REDIS_URL else "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        # The filesystem transport polls; 0.1 s keeps task pick-up latency low at a negligible cost.
        "polling_interval": 0.1,
    }
    # kombu's transport, with atomic writes and claims held until ack (controlplane/broker.py, issue #10).
    CELERY_BROKER_TRANSPORT = "controlplane.broker:Transport"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "controlplane.observability.scheduler:HeartbeatDatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Three queues, so that one kind of work can never take another's worker slots (issue #10): a slow webhook
# target must not delay a health check. `serve` runs one worker per queue; production runs at least one
# worker per queue (docs/operations.md, "Queues and time limits"). A task missing here goes to housekeeping.
TASK_QUEUE_TASKS = {
    "probes": ("registry.tasks.dispatch_due_checks", "registry.tasks.run_probe_batch"),
    "deliveries": ("controlplane.delivery.deliver", "pipelines.run_execute"),
    "housekeeping": (
        "controlplane.delivery.deliveries_sweep",
        "controlplane.events.tasks.events_prune",
        "registry.tasks.reap_critical_instances",
        "registry.tasks.prune_check_results",
        "configstore.tasks.reload_sources",
        "configstore.tasks.reload_source",
        "pipelines.runs_recover",
        "pipelines.runs_prune",
        "pipelines.stats_flush",
        "monitoring.tasks.rollup",
        "monitoring.tasks.prune_points",
        "monitoring.tasks.alerts_evaluate",
        "monitoring.tasks.alerts_evaluate_status",
        "monitoring.tasks.alerts_prune",
    ),
}
# Soft limit (SoftTimeLimitExceeded raised in the task) and hard limit (the pool process is killed), per
# queue, in seconds. Probes: the longest probe timeout (60 s) plus the result write; deliveries: the longest
# request deadline plus the bookkeeping; housekeeping: a large retention prune.
TASK_TIME_LIMITS = {
    queue: (
        env_int(f"TASK_SOFT_TIME_LIMIT_{queue.upper()}", soft, minimum=1),
        env_int(f"TASK_TIME_LIMIT_{queue.upper()}", hard, minimum=2),
    )
    for queue, (soft, hard) in {"probes": (80, 100), "deliveries": (90, 120), "housekeeping": (240, 300)}.items()
}
for _queue, (_soft, _hard) in TASK_TIME_LIMITS.items():
    if _hard <= _soft:
        raise ImproperlyConfigured(f"TASK_TIME_LIMIT_{_queue.upper()} must be greater than the soft limit ({_soft}).")
# Worker processes (pool size) per queue for `serve`; production sizes its own workers with -c.
WORKER_CONCURRENCY = {
    "probes": env_int("WORKER_CONCURRENCY_PROBES", 2, minimum=1),
    "deliveries": env_int("WORKER_CONCURRENCY_DELIVERIES", 2, minimum=1),
    "housekeeping": env_int("WORKER_CONCURRENCY_HOUSEKEEPING", 1, minimum=1),
}
CELERY_TASK_DEFAULT_QUEUE = "housekeeping"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_ROUTES = {task: {"queue": queue} for queue, tasks in TASK_QUEUE_TASKS.items() for task in tasks}
CELERY_TASK_ANNOTATIONS = {
    task: {"soft_time_limit": TASK_TIME_LIMITS[queue][0], "time_limit": TASK_TIME_LIMITS[queue][1]}
    for queue, tasks in TASK_QUEUE_TASKS.items()
    for task in tasks
}
# Any other task (celery's own, or one not yet listed above) still has limits: housekeeping's.
CELERY_TASK_SOFT_TIME_LIMIT, CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMITS["housekeeping"]

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["controlplane.access.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.access.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["controlplane.access.permissions.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "controlplane.fastpaths.JsonFirstNegotiation",
    "DEFAULT_PARSER_CLASSES": ["controlplane.access.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "controlplane.pagination.CappedLimitOffsetPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "controlplane.schema.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "controlplane.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
}
API_PAGE_SIZE_MAX = env_int("API_PAGE_SIZE_MAX", 500, minimum=1)
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 64, minimum=2, maximum=500)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "controlplane API",
    "DESCRIPTION": "Service registry, configuration store and pipelines. Authenticate with `Authorization: Api-Key <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Request bodies get their own components (`…Request`): input rules (minLength, patterns, no read-only
    # fields) describe what the server accepts without constraining what it answers.
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and its docs page are public; every operation in them still needs a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Several apps name a choice field `kind` or `status`; give each choice set its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "CheckKindEnum": "registry.models.CheckKind",
        "CheckStatusEnum": "registry.models.CheckStatus",
        "InstanceStatusEnum": "registry.models.InstanceStatus",
        "ConfigSourceKindEnum": "configstore.models.SourceKind",
        "ConfigRuleKindEnum": "configstore.models.RuleKindChoice",
        "PipelineRunStatusEnum": "pipelines.models.RunStatus",
        # Webhook and pipeline deliveries share one choice set (pending/delivered/failed).
        "DeliveryStatusEnum": "controlplane.events.models.DeliveryStatus",
    },
}

# --- Observability -----------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if PRODUCTION else "text", ("json", "text"))
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Who may scrape /metrics: client addresses (REMOTE_ADDR) in these networks, and the bearer token when
# METRICS_TOKEN is set. Default: loopback only; with a token, any address that presents it.
METRICS_ALLOW_NETWORKS = env_networks(
    "METRICS_ALLOW_NETWORKS", ["0.0.0.0/0", "::/0"] if METRICS_TOKEN else ["127.0.0.0/8", "::1/128"]
)
BEAT_HEARTBEAT_MAX_AGE = env_int("BEAT_HEARTBEAT_MAX_AGE", 30, minimum=2)
# A worker heartbeat older than this counts as gone in /readyz (workers write one every 5 s).
WORKER_HEARTBEAT_MAX_AGE = env_int("WORKER_HEARTBEAT_MAX_AGE", 30, minimum=2)
# /readyz "degraded": probed checks are overdue and no result was recorded for this many dispatch
# intervals (the dispatcher runs every second).
READYZ_STALE_DISPATCH_INTERVALS = env_int("READYZ_STALE_DISPATCH_INTERVALS", 30, minimum=2)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "controlplane.observability.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "controlplane.observability.logging.JsonFormatter"},
        "text": {"()": "controlplane.observability.logging.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "celery": {"level": LOG_LEVEL},
        # One line per task received/succeeded (several a second with 1 s dispatch) drowns everything else;
        # failures still log at ERROR. CELERY_TASK_LOG_LEVEL=info brings them back.
        "celery.app.trace": {
            "level": env_choice("CELERY_TASK_LOG_LEVEL", "warning", ("debug", "info", "warning")).upper()
        },
        "celery.worker.strategy": {
            "level": env_choice("CELERY_TASK_LOG_LEVEL", "warning", ("debug", "info", "warning")).upper()
        },
        "celery.beat": {"level": env_choice("CELERY_TASK_LOG_LEVEL", "warning", ("debug", "info", "warning")).upper()},
        # kombu warns on every filesystem-transport connection that it has no host name: noise.
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Egress guard ------------------------------------------------------------------------------
# One policy per purpose (controlplane/egress.py, docs/operations.md). Denied for every purpose: link-local,
# "this network", the cloud metadata addresses (AWS/GCP/Azure 169.254.169.254 and fd00:ec2::254, Alibaba
# 100.100.100.200, Oracle 192.0.0.192), multicast, reserved and broadcast. Setting it replaces the list.
EGRESS_DENY_NETWORKS = env_networks(
    "EGRESS_DENY_NETWORKS",
    [
        "0.0.0.0/8",
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "192.0.0.192/32",
        "224.0.0.0/4",
        "ff00::/8",
        "240.0.0.0/4",
        "::/128",
    ],
)
# Loopback and private ranges: probes may reach them (their job); webhooks, pipeline deliveries and
# notifications may not in production unless EGRESS_ALLOW_PRIVATE is on or the address is allow-listed.
EGRESS_PRIVATE_NETWORKS = env_networks(
    "EGRESS_PRIVATE_NETWORKS",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
)
EGRESS_ALLOW_PRIVATE = env_bool("EGRESS_ALLOW_PRIVATE", not PRODUCTION)
EGRESS_ALLOW_NETWORKS = env_networks("EGRESS_ALLOW_NETWORKS", [])
EGRESS_DENY_HOSTS = env_list(
    "EGRESS_DENY_HOSTS",
    [
        "metadata.google.internal",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.tencentyun.com",
    ],
)

# --- Webhooks ----------------------------------------------------------------------------------
# Total deadline of one webhook request: connect, request, headers and body (controlplane/delivery).
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1, maximum=20)
WEBHOOK_BACKOFF_BASE_SECONDS = env_int("WEBHOOK_BACKOFF_BASE_SECONDS", 5, minimum=1)

# --- Outbound deliveries (webhooks, pipeline deliveries, notifications: controlplane/delivery) -----
# A claim lasts the kind's total deadline plus this margin (the outcome's bookkeeping), so it always
# outlives the attempt; a worker that dies mid-attempt releases the delivery when it runs out.
DELIVERY_CLAIM_MARGIN_SECONDS = env_int("DELIVERY_CLAIM_MARGIN_SECONDS", 30, minimum=1)
# One cap for every kind's exponential backoff.
DELIVERY_BACKOFF_CAP_SECONDS = env_int("DELIVERY_BACKOFF_CAP_SECONDS", 3600, minimum=1)
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 30, minimum=1)

# --- Config store ------------------------------------------------------------------------------
CONFIG_SOURCE_ROOT = Path(env_str("CONFIG_SOURCE_ROOT", str(VAR_DIR / "config-sources")))
# Env sources may only use these prefixes (or longer ones starting with them); empty = env sources off.
# The control plane's own settings variables are never read, whatever this allows (configstore/sources/env.py).
CONFIG_ENV_PREFIXES = env_list("CONFIG_ENV_PREFIXES", [])
if PRODUCTION:
    CONFIG_ENCRYPTION_KEY = env_str("CONFIG_ENCRYPTION_KEY", required=True)
else:
    from cryptography.fernet import Fernet

    CONFIG_ENCRYPTION_KEY = env_str("CONFIG_ENCRYPTION_KEY") or _embedded_secret(
        "config_encryption_key", lambda: Fernet.generate_key().decode()
    )

# --- App tuning ----------------------------------------------------------------------------------
# Per-route request counts and latency kept in process memory and folded into monitoring's minute
# points every few seconds (controlplane/observability/requestmetrics.py); off: nothing is counted.
MONITORING_REQUEST_METRICS = env_bool("MONITORING_REQUEST_METRICS", True)
# Dashboard live updates (monitoring/live.py): one coalesced message per tick per ASGI process; the public
# status page and badges are cached this many seconds (shared cache: Redis in production).
MONITORING_LIVE_TICK_SECONDS = env_int("MONITORING_LIVE_TICK_MS", 1000, minimum=100, maximum=10000) / 1000
MONITORING_LIVE_KEEPALIVE_SECONDS = env_int("MONITORING_LIVE_KEEPALIVE_SECONDS", 15, minimum=1, maximum=300)
MONITORING_STATUS_CACHE_SECONDS = env_int("MONITORING_STATUS_CACHE_SECONDS", 10, minimum=1, maximum=3600)
# E-mail (alert notification channels of kind email): Django's backend; console (stdout) in embedded mode,
# SMTP in production. The SMTP host is the operator's, never a user's: rules only choose recipients.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=120)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "controlplane@localhost")
# Where services reach this control plane (the demo services probe it; links in events point at it).
CONTROLPLANE_PUBLIC_URL = env_str("CONTROLPLANE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Each app keeps its defaults in its own conf module; the environment overrides the ones operators tune.
# A name absent from the environment is left unset here, so the app's default stays the only default.
_APP_TUNABLES = (
    "REGISTRY_RESULT_RETENTION_DAYS",
    "REGISTRY_RESULT_RETENTION_PER_CHECK",
    "REGISTRY_BATCH_CONCURRENCY",
    "REGISTRY_DISPATCH_MAX_PER_TICK",
    "CONFIG_MAX_ENTRIES",
    "CONFIG_IMPORT_MAX_BYTES",
    "CONFIG_WATCH_MAX_SECONDS",
    "PIPELINE_MAX_BATCH",
    "PIPELINE_MAX_PACKET_BYTES",
    "PIPELINE_RUN_RETENTION_DAYS",
    "PIPELINE_DELIVERY_MAX_ATTEMPTS",
    "PIPELINE_DELIVERY_TIMEOUT_SECONDS",
    "PIPELINE_DELIVERY_BACKOFF_SECONDS",
    "PIPELINE_MAX_CHAINED_RUNS",
    "PIPELINE_MAX_RECORDED_FAILURES",
    "PIPELINE_RUN_MAX_SECONDS",
    "USER_REGEX_MAX_LENGTH",
    "USER_REGEX_MAX_INPUT_CHARS",
    "JSON_SCHEMA_MAX_NODES",
    "PIPELINE_EXPRESSION_MAX_DEPTH",
    "PIPELINE_EXPRESSION_MAX_DIGITS",
    "MONITORING_MINUTE_RETENTION_HOURS",
    "MONITORING_HOUR_RETENTION_DAYS",
    "MONITORING_DAY_RETENTION_DAYS",
    "MONITORING_ROLLUP_SETTLE_SECONDS",
    "MONITORING_REQUEST_METRICS_FLUSH_SECONDS",
    "MONITORING_NOTIFICATION_TIMEOUT_SECONDS",
    "MONITORING_NOTIFICATION_MAX_ATTEMPTS",
    "MONITORING_NOTIFICATION_BACKOFF_BASE_SECONDS",
    "MONITORING_ALERT_LOOKBACK_SECONDS",
    "MONITORING_ALERT_CLAIM_SECONDS",
    "MONITORING_ALERT_HISTORY_DAYS",
)
for _name in _APP_TUNABLES:
    if env_str(_name):  # through env_str so the name is registered (config env sources never read it)
        globals()[_name] = env_int(_name, 0, minimum=1)

# --- Security ----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    # TLS terminates at the reverse proxy; these assume it sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Production: `serve` runs collectstatic into STATIC_ROOT at start (or run it in the image build) and
# WhiteNoise serves from there. Embedded: WhiteNoise serves straight from the apps, no collect step.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at every start about a missing one
WHITENOISE_USE_FINDERS = env_bool("STATIC_USE_FINDERS", not PRODUCTION)
# Under uvicorn, Django streams WhiteNoise's file responses from a thread and warns once per process about
# it; a static file is small and local, so the warning is noise in the newcomer's first screen.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
