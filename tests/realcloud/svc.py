#!/usr/bin/python3
"""Run one OpenStack service or manage command by name (the Debian service
packages that ship these console scripts are not installed, only python3-*).

    svc.py nova-compute --config-file nova.conf
nova-compute loads fake_driver.RealcloudFakeDriver as nova.virt.realcloud_fake.
"""
import importlib
import os
import sys

MAINS = {
    "nova-api-os-compute": "nova.cmd.api_os_compute",
    "nova-conductor": "nova.cmd.conductor",
    "nova-scheduler": "nova.cmd.scheduler",
    "nova-compute": "nova.cmd.compute",
    "nova-manage": "nova.cmd.manage",
    "glance-api": "glance.cmd.api",
    "glance-manage": "glance.cmd.manage",
    "neutron-server": "neutron.cmd.eventlet.server",
    "neutron-db-manage": "neutron.db.migration.cli",
}

name = sys.argv.pop(1)
sys.argv[0] = name
if name.startswith("nova-"):
    import nova.cmd  # noqa: F401  eventlet monkey-patching comes first
if name == "nova-compute":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fake_driver
    sys.modules["nova.virt.realcloud_fake"] = fake_driver
sys.exit(importlib.import_module(MAINS[name]).main())
