"""The local side of a sync: a folder's files, their content hashes (spared by a stat cache),
the plan of differences against a commit, and the restore of files from index entries.

Below the store and the client, so that both transports share it; it imports only
:mod:`..core.chunking` (the definition of a content hash) from the layers under it.
"""
