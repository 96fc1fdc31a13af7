"""Registry: persons, households, buildings, units, components, organisations."""
