"""Known finalization bugs: one TOML file and one repro script each (files/), and their loader."""
