"""`make bench`: the service's hot paths measured against a floor app and raw COPY, in one run."""
