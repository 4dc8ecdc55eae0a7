"""Training and evaluation of TSN, TSM and I3D on the rawframe lists that ``prep`` writes."""
