"""kernels_check: can this machine run a recipe, and are the kernels right? (`slothlab check`)"""
