"""`cpctl`: the command line over `controlplane_client` (entry point `controlplane_client.cli.main:main`)."""
