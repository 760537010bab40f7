"""The neurochip compiler: frontends -> IR -> passes -> chip image; Lava export."""
