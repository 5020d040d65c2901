"""Django settings for django-oscar as a shop team would deploy it (Oscar's "Building your
own shop" guide): PostgreSQL for the data, Redis through django-redis for the cache and the
sessions, gunicorn in front, DEBUG off, Oscar's own 404 and 500 templates.

Everything that differs between hosts comes from the environment (OSCAR_*), the way a
twelve-factor deployment does it; targets/oscar.yaml fills it with the harness stack's
proxies, so every dependency is reached through Toxiproxy. Nothing here patches Oscar.
"""

from __future__ import annotations

import os
from pathlib import Path

from oscar.defaults import *  # noqa: F403  (Oscar's documented way to take its defaults)

HERE = Path(__file__).resolve().parent


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"set {name} (see targets/oscar.yaml)")
    return value


SECRET_KEY = _env("OSCAR_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
WSGI_APPLICATION = "wsgi.application"
SITE_ID = 1
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",
    "rest_framework",
    "oscarapi",
    "shopapi.apps.ShopApiConfig",  # ours: the order confirmation after an API checkout
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # oscarapi's: a basket for API clients named by the Session-Id header.
    "oscarapi.middleware.ApiBasketMiddleWare",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.template.context_processors.i18n",
        "django.contrib.messages.context_processors.messages",
        "oscar.apps.search.context_processors.search_form",
        "oscar.apps.checkout.context_processors.checkout",
        "oscar.apps.communication.notifications.context_processors.notifications",
        "oscar.core.context_processors.metadata",
    ]},
}]

AUTHENTICATION_BACKENDS = (
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
)

DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": _env("OSCAR_DB_HOST", "127.0.0.1"),
    "PORT": _env("OSCAR_DB_PORT"),
    "NAME": _env("OSCAR_DB_NAME", "oscar"),
    "USER": _env("OSCAR_DB_USER", "oscar"),
    "PASSWORD": _env("OSCAR_DB_PASSWORD"),
    "CONN_MAX_AGE": 60,
    "CONN_HEALTH_CHECKS": True,
    "ATOMIC_REQUESTS": True,  # Oscar's docs recommend it: an order is all or nothing
    "OPTIONS": {"connect_timeout": 3},
}}

# django-redis, as its docs recommend for cache and sessions together.
CACHES = {"default": {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": _env("OSCAR_REDIS_URL"),
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
}}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"

HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}

STATIC_URL = "/static/"
STATIC_ROOT = _env("OSCAR_STATIC_ROOT", str(HERE / "static"))
MEDIA_URL = "/media/"
MEDIA_ROOT = _env("OSCAR_MEDIA_ROOT", str(HERE / "media"))

OSCAR_SHOP_NAME = "Oscar Sandbox"
OSCAR_DEFAULT_CURRENCY = "USD"
OSCAR_ALLOW_ANON_CHECKOUT = True
OSCAR_SAVE_SENT_EMAILS_TO_DB = False
OSCAR_INITIAL_ORDER_STATUS = "Pending"
OSCAR_INITIAL_LINE_STATUS = "Pending"
OSCAR_ORDER_STATUS_PIPELINE = {
    "Pending": ("Being processed", "Cancelled"),
    "Being processed": ("Processed", "Cancelled"),
    "Cancelled": (),
    "Processed": (),
}
OSCAR_REQUIRED_ADDRESS_FIELDS = ("first_name", "last_name", "line1", "line4", "postcode",
                                 "country")

# oscarapi: our checkout serializer (it takes the payment) in shopapi/.
OSCARAPI_OVERRIDE_MODULES = ["shopapi"]
OSCARAPI_BLOCK_ADMIN_API_ACCESS = True

# The card processor, reached through its proxy; how long the gateway may take.
PAYMENTS_URL = _env("OSCAR_PAYMENTS_URL")
PAYMENTS_TIMEOUT_SECONDS = float(_env("OSCAR_PAYMENTS_TIMEOUT", "4"))
PAYMENTS_TOKEN = _env("OSCAR_PAYMENTS_TOKEN", "")  # the processor's API key

# The shop's mail server (SMTP), reached through its proxy; Django's defaults otherwise
# (no timeout of its own), as a deployment that sets only where the server is.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = _env("OSCAR_EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(_env("OSCAR_EMAIL_PORT"))
OSCAR_FROM_EMAIL = DEFAULT_FROM_EMAIL = "orders@oscar.example"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
