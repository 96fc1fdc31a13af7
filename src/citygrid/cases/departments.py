"""Department names as the cases pages and exports show them."""

from __future__ import annotations

from citygrid.kit.i18n import _


def department_label(slug: str) -> str:
    """The department's name in the current language (the slug when it is not known)."""
    labels = {
        "public-security": _("Public security"),
        "family-planning": _("Health and family planning"),
        "civil-affairs": _("Civil affairs"),
        "social-security": _("Human resources and social security"),
        "rental-housing": _("Rental housing"),
        "housing-construction": _("Housing and construction"),
        "water-affairs": _("Water affairs"),
        "market-regulation": _("Market regulation"),
        "urban-management": _("Urban management"),
        "landscaping": _("Landscaping"),
        "power-supply": _("Power supply"),
        "transport": _("Transport"),
    }
    return labels.get(slug, slug)
