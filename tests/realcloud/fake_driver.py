"""Fake virt driver with test knobs for the realcloud suite (nova-compute loads it via svc.py).

Subclasses nova.virt.fake.FakeDriver (python3-nova, Zed).  Knobs come from
the environment of nova-compute, each overridden by the same key in the JSON
file REALCLOUD_FAKE_KNOBS names (read again at every spawn, reboot and
destroy, so a test changes them while Nova runs):

  REALCLOUD_FAKE_SPAWN_DELAY   "spawn_delay": seconds to sleep in spawn()
  REALCLOUD_FAKE_FAIL_REGEX    "fail_regex": a server whose display name
                               matches (re.search) raises BuildAbortException
                               in spawn() -> ERROR without a reschedule
  REALCLOUD_FAKE_REBOOT_DELAY  "reboot_delay": seconds to sleep in reboot()
  REALCLOUD_FAKE_HOOK          "hook": a command run (sh -c) when a server
                               boots (EMU_EVENT=create), reboots (reboot) or
                               goes away (delete), with EMU_SERVER_NAME,
                               EMU_SERVER_ID and EMU_ADDRESS in its
                               environment: tests/harness/instance.py
                               emu-hook, as the emulator's boot hook
                               "addresses": {display name: IPv4 address}

The fake driver's servers have no network (the suite's servers are created
with networks "none": Nova allocates no port).  A server whose name is in
"addresses" gets that address in Nova's view anyway: the driver writes a
network info cache with one VIF whose fixed IPv4 is that address, at spawn
and again at reboot (the compute manager rebuilds the cache from Neutron,
which has no port, before calling reboot()), so GET /servers/ID shows it
under "addresses" with OS-EXT-IPS:type "fixed", as elasticd reads it.
nova.conf sets heal_instance_info_cache_interval = -1 so that the periodic
task never replaces it with Neutron's empty view.
"""
import json
import os
import re
import subprocess
import time
import uuid

from nova import exception
from nova.network import model as network_model
from nova.virt import fake


def knobs():
    k = {
        "spawn_delay": os.environ.get("REALCLOUD_FAKE_SPAWN_DELAY"),
        "fail_regex": os.environ.get("REALCLOUD_FAKE_FAIL_REGEX"),
        "reboot_delay": os.environ.get("REALCLOUD_FAKE_REBOOT_DELAY"),
        "hook": os.environ.get("REALCLOUD_FAKE_HOOK"),
        "addresses": {},
    }
    path = os.environ.get("REALCLOUD_FAKE_KNOBS")
    if path:
        try:
            with open(path) as f:
                k.update(json.load(f))
        except FileNotFoundError:
            pass
    return k


def _float(v):
    try:
        return float(v or 0)
    except ValueError:
        return 0.0


def _hook(k, event, instance, address):
    if not k.get("hook"):
        return
    env = dict(os.environ, EMU_EVENT=event, EMU_SERVER_NAME=instance.display_name or "",
               EMU_SERVER_ID=instance.uuid, EMU_ADDRESS=address or "")
    # green under nova-compute's monkey-patching: other builds go on
    subprocess.run(["/bin/sh", "-c", k["hook"]], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def _show_address(instance, address):
    """Nova's view of the server: one VIF with ADDRESS as its fixed IPv4."""
    prefix = ".".join(address.split(".")[:3])
    subnet = network_model.Subnet(
        cidr=prefix + ".0/24",
        ips=[network_model.FixedIP(address=address)],
        gateway=network_model.IP(address=prefix + ".1", type="gateway"))
    net = network_model.Network(id="realcloud-test", bridge="br-test", label="realcloud-test",
                                subnets=[subnet])
    vif = network_model.VIF(id=str(uuid.uuid5(uuid.NAMESPACE_URL, instance.uuid)),
                            address="fa:16:3e:%02x:%02x:%02x" % tuple(
                                int(x) % 256 for x in address.split(".")[1:]),
                            network=net, type="other", active=True)
    instance.info_cache.network_info = network_model.NetworkInfo([vif])
    instance.info_cache.save()


class RealcloudFakeDriver(fake.FakeDriver):

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        k = knobs()
        delay = _float(k.get("spawn_delay"))
        if delay > 0:
            time.sleep(delay)  # green sleep: nova-compute is monkey-patched
        regex = k.get("fail_regex")
        if regex and re.search(regex, instance.display_name or ''):
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason='RealcloudFakeDriver: name matches '
                       'REALCLOUD_FAKE_FAIL_REGEX')
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        address = k["addresses"].get(instance.display_name)
        if address:
            _show_address(instance, address)
        _hook(k, "create", instance, address)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None):
        k = knobs()
        address = k["addresses"].get(instance.display_name)
        if address:
            _show_address(instance, address)
        delay = _float(k.get("reboot_delay"))
        if delay > 0:
            time.sleep(delay)
        super().reboot(context, instance, network_info, reboot_type,
                       block_device_info=block_device_info,
                       bad_volumes_callback=bad_volumes_callback,
                       accel_info=accel_info)
        _hook(k, "reboot", instance, address)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)
        _hook(knobs(), "delete", instance, None)
