"""Lua scripts of RedisDelayQueue (package data, loaded with importlib.resources)."""
