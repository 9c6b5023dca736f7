"""The public status page (/status/) and its SVG badges: public services only, cached, nothing internal."""
