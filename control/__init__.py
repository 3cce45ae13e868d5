"""ketch's control plane: the apiserver, controllers and scheduler (see DESIGN.md, control/)."""

__all__: list[str] = []
