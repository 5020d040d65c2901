"""A real browser (Playwright driving Debian's headless Chromium) on the shop's pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.stack import Stack
from chaos.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def add_lantern_and_open_checkout(page, shop_url: str) -> None:
    # A shop still recovering from the previous test's outage may show the sale page
    # without its buttons for a moment: reload until the lantern can be added.
    button = 'button[data-sku="LAMP-001"]'
    def offered() -> bool:
        page.goto(f"{shop_url}/")
        return page.locator(button).count() > 0

    eventually(offered, 20, "the sale page offers the lantern", every=0.25)
    page.click(button)
    page.wait_for_url(f"{shop_url}/cart")
    assert "LED Lantern" in page.inner_text("main")
    page.click("#go-checkout")
    page.wait_for_url(f"{shop_url}/checkout")


def test_place_an_order_through_the_pages(stack: Stack, page, output_dir: Path) -> None:
    shop = stack.config.shop_url
    add_lantern_and_open_checkout(page, shop)
    page.fill('input[name="card_number"]', "4242 4242 4242 4242")
    page.click("#place-order")
    page.wait_for_url(f"{shop}/orders/*")
    assert page.inner_text("#order-status") == "confirmed"
    assert "$11.99" in page.inner_text("main")
    page.screenshot(path=str(output_dir / "order-confirmed.png"), full_page=True)


def test_database_down_shows_the_sorry_page(stack: Stack, faults, page, output_dir: Path) -> None:
    shop = stack.config.shop_url
    add_lantern_and_open_checkout(page, shop)
    faults.disable("postgres")
    page.fill('input[name="card_number"]', "4242424242424242")
    with page.expect_response(lambda r: r.url.endswith("/checkout")) as answer:
        page.click("#place-order")
    assert answer.value.status == 503
    assert answer.value.headers["retry-after"]
    page.wait_for_selector("#sorry")
    text = page.inner_text("#sorry")
    # Not "you have not been charged": without its orders the shop cannot tell this try
    # from the retry of one that took the money, so it says what it knows.
    assert "We could not confirm whether your payment went through" in text
    assert "never be charged twice" in text and "Your cart is saved." in text
    assert page.inner_text("#request-id") == answer.value.headers["x-request-id"]
    assert page.locator("#sorry img").evaluate("img => img.naturalWidth") > 0  # the dog shows
    page.screenshot(path=str(output_dir / "sorry-database-down.png"), full_page=True)


def test_payments_down_still_takes_the_order_and_says_so(
    stack: Stack, faults, page, output_dir: Path,
) -> None:
    shop = stack.config.shop_url
    add_lantern_and_open_checkout(page, shop)
    faults.disable("payments")
    page.fill('input[name="card_number"]', "4242424242424242")
    page.click("#place-order")
    page.wait_for_url(f"{shop}/orders/*")
    assert page.inner_text("#order-status") == "payment pending"
    assert "you have not been charged yet" in page.inner_text("#payment-pending")
    page.screenshot(path=str(output_dir / "order-payment-pending.png"), full_page=True)
    def told() -> bool:  # each worker learns of the outage from its own calls and prober
        page.goto(f"{shop}/status")
        return "down" in page.inner_text("#dep-payments")

    eventually(told, 10, "the status page says payments are down", every=0.2)
    assert page.is_visible("#site-banner")
    assert "Card payments are not going through" in page.inner_text("#site-banner")
    page.screenshot(path=str(output_dir / "status-payments-down.png"), full_page=True)
