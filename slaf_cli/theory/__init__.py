"""Theory as commands: approximation error, polynomial export and distillation.

``approx`` sweeps least-squares SLAF fits against degree, ``polynomial`` and
``export`` write monomial SLAF networks as explicit polynomials, ``distill``
replaces the activations of a trained network by fitted SLAFs, and ``runs`` loads
the run folders that ``slaf-train`` writes.
"""
