// golive dashboard: follows the event stream (Server-Sent Events) and, when something relevant
// is recorded, fetches the same page again and swaps its <main> in place. No reload, no polling:
// the page's own state (scroll, script variables, which form groups are open) survives. While a
// rep is filling in a form the page is not swapped (that would lose what they typed); the
// status line says so, and the form's version field makes the server refuse it if it went stale.
// Links to a form (#form-<command>) open the group it sits in.
(function () {
  'use strict';

  function openTarget(hash) {
    if (!hash || hash.length < 2) {
      return;
    }
    var target = document.getElementById(decodeURIComponent(hash.slice(1)));
    if (!target) {
      return;
    }
    for (var node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === 'DETAILS') {
        node.open = true;
      }
    }
    target.scrollIntoView({ block: 'start' });
    var first = target.querySelector('input:not([type=hidden]), select, textarea, button');
    if (first) {
      first.focus({ preventScroll: true });
    }
  }

  // A next action's button carries the fields golive can fill: put them into the form.
  function prefill(form, fields) {
    Object.keys(fields).forEach(function (name) {
      var value = fields[name];
      var inputs = form.querySelectorAll('[name="' + name + '"]');
      Array.prototype.forEach.call(inputs, function (input) {
        if (input.type === 'checkbox') {
          input.checked = Array.isArray(value) ? value.indexOf(input.value) >= 0 : value === true;
        } else if (input.type !== 'password' && input.type !== 'hidden') {
          input.value = Array.isArray(value) ? value.join('\n') : String(value);
        }
      });
    });
  }

  document.addEventListener('click', function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#form-"]');
    if (link) {
      event.preventDefault();
      history.replaceState(null, '', link.getAttribute('href'));
      openTarget(link.getAttribute('href'));
      var data = link.getAttribute('data-prefill');
      var form = document.getElementById(link.getAttribute('href').slice(1));
      if (data && form && form.tagName === 'FORM') {
        try {
          prefill(form, JSON.parse(data));
        } catch (ignored) {
          // A button without usable fields still opens its form.
        }
      }
    }
  });
  window.addEventListener('hashchange', function () {
    openTarget(window.location.hash);
  });
  document.addEventListener('input', function (event) {
    var form = event.target.closest && event.target.closest('form.command');
    if (form) {
      form.setAttribute('data-dirty', 'true');
    }
  });
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () {
      openTarget(window.location.hash);
    });
  } else {
    openTarget(window.location.hash);
  }
})();

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
    if (document.querySelector('form.command[data-dirty]')) {
      say('New events were recorded while you were filling in a form; submit it (a stale form is refused, nothing lost) or reload to see them.');
      return;
    }
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
          var open = Array.prototype.map.call(current.querySelectorAll('details[id]'), function (d) {
            return [d.id, d.open];
          });
          current.replaceWith(document.importNode(fresh, true));
          open.forEach(function (pair) {
            var details = document.getElementById(pair[0]);
            if (details) {
              details.open = pair[1];
            }
          });
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
