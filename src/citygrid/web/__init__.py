"""The web shell: layout, home and map pages, static assets."""
