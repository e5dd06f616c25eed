"""The infrastructure a sweep runs on, none of it specific to sweeps: the Ray a sweep uses (started
here on loopback and reaped if its driver dies, or joined by address) and an S3-compatible object
store as a place for files.

    local_ray      start or join Ray; the reaper; address and cluster-size checks
    object_store   ``check_storage``, ``Remote``, upload / download / mirror, ``local_copy``
"""
