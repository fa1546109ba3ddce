from django.conf import settings
from django.http import HttpRequest


def business(request: HttpRequest) -> dict:
    """Expose who runs this site to every template (header, footer, emails rendered with a request)."""
    return {
        "business_name": settings.BUSINESS_NAME,
        "support_email": settings.SUPPORT_EMAIL,
        "support_phone": settings.SUPPORT_PHONE,
    }
