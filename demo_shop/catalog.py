"""The reference shop's product catalog: the single source the shop and inventory seed from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    """A product with its list price and its Labor Day sale price, in integer cents."""

    sku: str
    name: str
    price_cents: int
    sale_price_cents: int
    initial_stock: int


PRODUCTS: tuple[Product, ...] = (
    Product("GRILL-001", "Charcoal Kettle Grill 22in", 14999, 9999, 400),
    Product("GRILL-002", "Gas Grill 3-Burner", 49999, 34999, 150),
    Product("COOL-001", "Rolling Cooler 60qt", 8999, 5999, 600),
    Product("COOL-002", "Soft Cooler Backpack", 3999, 2499, 900),
    Product("CHAIR-001", "Folding Camp Chair", 2999, 1799, 1500),
    Product("CHAIR-002", "Zero Gravity Lounger", 7999, 4999, 500),
    Product("TENT-001", "4-Person Dome Tent", 12999, 7999, 300),
    Product("LAMP-001", "LED Lantern", 1999, 1199, 2000),
    Product("BOTL-001", "Insulated Bottle 32oz", 3499, 2299, 3000),
    Product("TOWL-001", "Beach Towel XL", 2499, 1499, 2500),
    Product("UMBR-001", "Beach Umbrella 7ft", 4999, 2999, 700),
    Product("SPKR-001", "Waterproof Speaker", 7999, 4799, 800),
    Product("HAMK-001", "Double Hammock", 5999, 3599, 600),
    Product("TABL-001", "Folding Picnic Table", 11999, 7999, 250),
    Product("FLAG-001", "US Flag 3x5ft", 2499, 1799, 1200),
    Product("SUNS-001", "Sunscreen SPF50 2-pack", 1899, 1299, 4000),
    Product("SHDE-001", "Pop-up Canopy 10x10", 15999, 9999, 200),
    Product("FIRE-001", "Smokeless Fire Pit", 29999, 19999, 120),
    Product("KAYK-001", "Inflatable Kayak", 24999, 16999, 90),
    Product("BIKE-001", "Cruiser Bike", 39999, 27999, 60),
)


def product_by_sku() -> dict[str, Product]:
    """Index the catalog by sku."""
    return {p.sku: p for p in PRODUCTS}
