"""The class hub: ``./course hub`` runs JupyterHub for a whole class (hub/jupyterhub_config.py is its config).

    hub/jupyterhub_config.py   JupyterHub's config, for an admin to read and adapt
    hub/settings.py            the hub's settings (environment variables with defaults)
    hub/exchange.py            nbgrader's exchange, closed so students cannot reach each other's work
    hub/labs.py                each role's Jupyter config folder and the shared nbgrader config
    hub/users.py               OS users and the instructors' group (each student's server runs as their own user)
    hub/auth.py                LTI 1.3 login: the LMS id names the user, the LMS role picks student or instructor
    hub/spawn.py               what the hub prepares at start (as root) and before each user's server
    hub/student_env.py         the students' Python: a bundle's packages, the course venv's without its editable install
    hub/checkout.py            the checkout closed to every OS user but root and the instructors
    hub/uids.py                Kubernetes: one uid per student, from the LMS id, collisions refused
    hub/prepare_exchange.py    the exchange laid out without a hub (a cluster's shared volume)
    hub/k8s/                   Zero to JupyterHub: the single-user image and the chart's values
"""
