"""Department pages: department admins manage members, curators manage collections.

The views here only read the request, call the function that owns the rule
(kb/accounts/membership.py for members, kb/accounts/departments.py for the overview and
collections) and render the answer. Who may do what comes from kb/accounts/access.py, as
everywhere else: anything the user may not manage is a 404 (so ids cannot be probed) plus an
`access.denied` record (gates.py). Changes are ordinary save()/delete()/m2m calls, so the audit
signals (kb/audit/signals.py) record each one exactly once, with this request's actor, IP and
request id; nothing here writes those records a second time. The access filter is computed per
request, so every change here applies from the very next request.
"""
