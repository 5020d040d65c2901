"""oscarapi's checkout with the payment step Oscar's own checkout has: the card is charged
(handle_payment, as Oscar's PaymentDetailsView does) before the order is written, and the
payment source and its event are saved with the order.

Loaded by oscarapi's class override (settings.OSCARAPI_OVERRIDE_MODULES); oscarapi's own
serializer does no payment at all.
"""

from __future__ import annotations

import gateway
from oscar.apps.payment.exceptions import PaymentError, UnableToTakePayment
from oscar.core.loading import get_model
from oscarapi.serializers.checkout import CheckoutSerializer as BaseCheckoutSerializer
from rest_framework import exceptions, serializers, status

Source = get_model("payment", "Source")
SourceType = get_model("payment", "SourceType")


class CardSerializer(serializers.Serializer):
    """The card as the shopper typed it (never stored)."""

    number = serializers.RegexField(r"^\d{12,19}$")
    exp_month = serializers.IntegerField(min_value=1, max_value=12)
    exp_year = serializers.IntegerField(min_value=2000, max_value=2100)
    cvc = serializers.RegexField(r"^\d{3,4}$")


class PaymentSerializer(serializers.Serializer):
    """How the shopper pays: a card."""

    card = CardSerializer()


class PaymentDeclined(exceptions.APIException):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "Your card was declined."
    default_code = "payment_declined"


class PaymentUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "We could not take your payment just now. Please try again."
    default_code = "payment_unavailable"


class CheckoutSerializer(BaseCheckoutSerializer):
    """Checkout with payment: the card is charged, then the order is placed."""

    payment = PaymentSerializer(write_only=True)

    def handle_payment(self, order_number, total, **kwargs):
        """Charge the card (keyed by the request's Idempotency-Key) and record the source
        and its settled event, for place_order to save with the order."""
        request = self.context["request"]
        key = request.headers.get("Idempotency-Key") or f"order-{order_number}"
        try:
            reference = gateway.charge(order_number, total.incl_tax, total.currency,
                                       kwargs["card"], key)
        except UnableToTakePayment as exc:
            raise PaymentDeclined() from exc
        except PaymentError as exc:
            raise PaymentUnavailable() from exc
        # Made by the fixture: a get_or_create here raced between the first concurrent
        # checkouts and left two rows, after which every checkout failed.
        source_type = SourceType.objects.get(code="card-processor")
        self.add_payment_source(Source(source_type=source_type, currency=total.currency,
                                       amount_allocated=total.incl_tax,
                                       amount_debited=total.incl_tax, reference=key))
        self.add_payment_event("Settled", total.incl_tax, reference=reference)

    def create(self, validated_data):
        basket = validated_data["basket"]
        order_number = self.generate_order_number(basket)
        payment = validated_data.pop("payment")
        self.handle_payment(order_number, validated_data["order_total"],
                            card=dict(payment["card"]))
        return super().create(validated_data)

