"""Recipes: one TOML file per experiment (model × method × ZeRO × data × batch), expandable as grids."""

from zerodeck.core.recipe.load import RecipeError, load_recipe, load_recipe_file
from zerodeck.core.recipe.model import Recipe

__all__ = ["Recipe", "RecipeError", "load_recipe", "load_recipe_file"]
