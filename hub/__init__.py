"""The class hub: ``./course hub`` runs JupyterHub for a whole class (hub/jupyterhub_config.py is its config).

    hub/jupyterhub_config.py   JupyterHub's config, for an admin to read and adapt
    hub/settings.py            the hub's settings (environment variables with defaults)
    hub/exchange.py            nbgrader's exchange, closed so students cannot reach each other's work
    hub/labs.py                each role's Jupyter config folder and the shared nbgrader config
    hub/users.py               OS users and the instructors' group (each student's server runs as their own user)
    hub/auth.py                LTI 1.3 login (roles to student/instructor) and the local trial login
"""
