"""Fake virt driver with test knobs for the realcloud suite (nova-compute loads it via svc.py).

Subclasses nova.virt.fake.FakeDriver (python3-nova, Zed).  Knobs are read
from the environment of nova-compute at each spawn:

  REALCLOUD_FAKE_SPAWN_DELAY   seconds to sleep in spawn() (float, default 0)
  REALCLOUD_FAKE_FAIL_REGEX    if the server's display name matches this
                             regex (re.search), spawn() raises
                             BuildAbortException -> server goes to ERROR
                             without a reschedule
  REALCLOUD_FAKE_REBOOT_DELAY  seconds to sleep in reboot() (default 0)
"""
import os
import re
import time

from nova import exception
from nova.virt import fake


class RealcloudFakeDriver(fake.FakeDriver):

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        delay = float(os.environ.get('REALCLOUD_FAKE_SPAWN_DELAY', '0') or 0)
        if delay > 0:
            time.sleep(delay)  # green sleep: nova-compute is monkey-patched
        regex = os.environ.get('REALCLOUD_FAKE_FAIL_REGEX')
        if regex and re.search(regex, instance.display_name or ''):
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason='RealcloudFakeDriver: name matches '
                       'REALCLOUD_FAKE_FAIL_REGEX')
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None):
        delay = float(os.environ.get('REALCLOUD_FAKE_REBOOT_DELAY', '0') or 0)
        if delay > 0:
            time.sleep(delay)
        super().reboot(context, instance, network_info, reboot_type,
                       block_device_info=block_device_info,
                       bad_volumes_callback=bad_volumes_callback,
                       accel_info=accel_info)
