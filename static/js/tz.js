// Tell the server the browser's time zone (prepaid/timezones.py): times on the pages and in the
// emails are shown in it until the driver chooses another in their settings.
(function () {
  "use strict";
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + zone) === -1) {
      document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (err) { /* no Intl: the region's zone stays */ }
})();
