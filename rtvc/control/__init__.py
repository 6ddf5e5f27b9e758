"""Control surfaces around the engine: OBS scene switching and other remote controls."""
