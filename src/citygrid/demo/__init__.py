"""The synthetic demo city (Yuexiu District, Guangzhou)."""
