"""The order confirmation an API checkout sends, as Oscar's own checkout does.

Oscar's PaymentDetailsView mails the order's confirmation in handle_successful_order;
oscarapi's checkout sends the signal oscarapi_post_checkout instead, and its docs say to
hook such steps there. This does what Oscar's view does, with its own dispatcher and
templates ("Confirmation of order <number>"), inside the checkout's request.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger("oscar.checkout")


def send_confirmation(sender: Any, order: Any, user: Any, request: Any, **kwargs: Any) -> None:
    """Oscar's OrderPlacementMixin.send_order_placed_email, for an API checkout."""
    from oscar.core.loading import get_class

    dispatcher = get_class("order.utils", "OrderDispatcher")(logger=logger)
    context = {"user": user, "order": order, "lines": order.lines.all(), "request": request}
    dispatcher.send_order_placed_email_for_user(order, context)


class ShopApiConfig(AppConfig):
    name = "shopapi"
    label = "shopapi"
    verbose_name = "Shop API (checkout payment and confirmation)"

    def ready(self) -> None:
        from oscarapi.signals import oscarapi_post_checkout

        oscarapi_post_checkout.connect(send_confirmation, dispatch_uid="shop-confirmation")
