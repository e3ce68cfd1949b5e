"""Daemonless, reproducible image builds (``amlpkg build --builder oci``).

Layers are written here (sorted, root-owned, ``SOURCE_DATE_EPOCH`` times, fixed gzip)
on a base pinned by digest, pushed through the registry API, with an index for several
platforms and an SBOM and provenance attached as referrers. Entry point:
:func:`amlpkg.packager.build.oci_builder.build.build_oci_image`.
"""
