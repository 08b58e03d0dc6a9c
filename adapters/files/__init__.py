"""File-system adapters: rotating capture files."""
