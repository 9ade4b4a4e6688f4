"""The project file, ``chariot.toml``: everything Chariot knows about the user's data.

Tables (keys, columns, their source and sink types, transforms), the graph model and the
aggregations. ``load_project`` finds and validates it; ``chariot init`` writes a first one
by reflecting the source (``chariot.project.init``).
"""

from chariot.project.loading import PROJECT_FILE, load_project, parse_project, project_path
from chariot.project.model import Column, Project, Table

__all__ = [
    "PROJECT_FILE",
    "Column",
    "Project",
    "Table",
    "load_project",
    "parse_project",
    "project_path",
]
