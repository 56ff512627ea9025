// golive dashboard: follows the event stream (Server-Sent Events) and, when something relevant
// is recorded, fetches the same page again and swaps its <main> in place. No reload, no polling:
// the page's own state (scroll, script variables) survives.
(function () {
  'use strict';
  var body = document.body;
  var after = body.getAttribute('data-live-after');
  if (after === null || typeof EventSource === 'undefined') {
    return;
  }
  var only = body.getAttribute('data-live-integration');
  var types = (body.getAttribute('data-event-types') || '').split(' ').filter(Boolean);
  var status = document.getElementById('live-status');
  var pending = null;
  var refreshing = false;
  var again = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error('HTTP ' + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('main');
        var current = document.getElementById('main');
        if (fresh && current) {
          var focused = document.activeElement && document.activeElement.id;
          current.replaceWith(document.importNode(fresh, true));
          if (focused && document.getElementById(focused)) {
            document.getElementById(focused).focus();
          }
        }
        body.setAttribute('data-live-updates', String(Number(body.getAttribute('data-live-updates') || '0') + 1));
        say('Live: updated at ' + new Date().toLocaleTimeString() + '.');
      })
      .catch(function (error) {
        say('Live update failed (' + error.message + '); reload the page to see the latest.');
      })
      .then(function () {
        refreshing = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function onEvent(message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (ignored) {
      return;
    }
    if (only && event.integration_id !== only) {
      return;
    }
    // Commands append several events at once: refresh once they have all arrived.
    window.clearTimeout(pending);
    pending = window.setTimeout(refresh, 150);
  }

  var source = new EventSource('/api/v1/events/stream?after=' + encodeURIComponent(after));
  types.forEach(function (type) {
    source.addEventListener(type, onEvent);
  });
  source.addEventListener('message', onEvent);
  source.onopen = function () {
    body.setAttribute('data-live', 'open');
    say('Live: changes appear as they are recorded.');
  };
  source.onerror = function () {
    body.setAttribute('data-live', 'reconnecting');
    say('Live updates interrupted; reconnecting…');
  };
})();
