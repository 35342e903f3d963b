"""Closed-loop evaluation in the built-in world with NoMaD's deployment loop (:mod:`navintent.deploy`).

:mod:`navintent.evaluation.tasks`: the map recorded by the expert, navigation and exploration episodes, their
metrics. ``navintent evaluate`` (:mod:`navintent.evaluate`) runs them per method and writes the tables.
"""
