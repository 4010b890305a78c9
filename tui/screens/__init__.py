"""The TUI's screens: Recipes, Configure, Run, Results, History (and small modals)."""
