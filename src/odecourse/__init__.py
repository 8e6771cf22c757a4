"""odecourse: the tested code behind the course *From ODEs to neural ODEs*."""

__version__ = "0.1.0"
