"""The upstream systems the shop depends on, simulated: a card processor (payments) and a
stock service (inventory), each its own gunicorn process reached through Toxiproxy. Not
part of the shop: stand-ins for what a real shop calls over the network."""
