"""Presets: profiles shipped with bootlab, one TOML file each (the file name is the preset name)."""
