"""Recipes that build the demo (a merged training set, the bundled model, its quality bar).

They sit on top of the library and use only its public parts; nothing in the core imports them.
"""
