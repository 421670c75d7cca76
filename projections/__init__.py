"""Projectors, one per read model."""

from midas.projection import Projector
from projections.inventory import InventoryProjector


def all_projectors() -> list[Projector]:
    return [InventoryProjector()]
