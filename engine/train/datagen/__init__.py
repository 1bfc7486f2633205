"""Offline data generation: development looks mined from style notes
(:mod:`engine.train.datagen.looks_mining`) and SIMULATED shoppers' clicks
(:mod:`engine.train.datagen.clicks`). Nothing here runs while serving."""
