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


# Stock for a sale day: a Labor Day rehearsal at full rate must not sell out mid-run.
PRODUCTS: tuple[Product, ...] = (
    Product("GRILL-001", "Charcoal Kettle Grill 22in", 14999, 9999, 40000),
    Product("GRILL-002", "Gas Grill 3-Burner", 49999, 34999, 15000),
    Product("COOL-001", "Rolling Cooler 60qt", 8999, 5999, 60000),
    Product("COOL-002", "Soft Cooler Backpack", 3999, 2499, 90000),
    Product("CHAIR-001", "Folding Camp Chair", 2999, 1799, 150000),
    Product("CHAIR-002", "Zero Gravity Lounger", 7999, 4999, 50000),
    Product("TENT-001", "4-Person Dome Tent", 12999, 7999, 30000),
    Product("LAMP-001", "LED Lantern", 1999, 1199, 200000),
    Product("BOTL-001", "Insulated Bottle 32oz", 3499, 2299, 300000),
    Product("TOWL-001", "Beach Towel XL", 2499, 1499, 250000),
    Product("UMBR-001", "Beach Umbrella 7ft", 4999, 2999, 70000),
    Product("SPKR-001", "Waterproof Speaker", 7999, 4799, 80000),
    Product("HAMK-001", "Double Hammock", 5999, 3599, 60000),
    Product("TABL-001", "Folding Picnic Table", 11999, 7999, 25000),
    Product("FLAG-001", "US Flag 3x5ft", 2499, 1799, 120000),
    Product("SUNS-001", "Sunscreen SPF50 2-pack", 1899, 1299, 400000),
    Product("SHDE-001", "Pop-up Canopy 10x10", 15999, 9999, 20000),
    Product("FIRE-001", "Smokeless Fire Pit", 29999, 19999, 12000),
    Product("KAYK-001", "Inflatable Kayak", 24999, 16999, 9000),
    Product("BIKE-001", "Cruiser Bike", 39999, 27999, 6000),
)


def product_by_sku() -> dict[str, Product]:
    """Index the catalog by sku."""
    return {p.sku: p for p in PRODUCTS}
