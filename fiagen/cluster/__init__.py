"""Ray plumbing every stage shares: attach to or start a Ray (session), no Ray process outliving a killed
driver (reaper, watcher), and a stop relayed from the driver to the processes that train (relay)."""
