// The core of Mixpanel's JQL, run by the emulator's /jql endpoint in QuickJS.
// QuickJS cannot call into Python under a time limit, so data arrives by replay:
// an Events()/People() query whose rows are not in __mp_cache yet throws
// __MP_NEED_DATA; Python loads the rows (one JSON string per query) into the cache
// and runs main() again. Every transformation below runs in JavaScript.
// Reducers are called once per group as reducer([], items): JQL's incremental
// contract (accumulators, items) holds with an empty accumulator list.
"use strict";

function __mp_path(obj, path) {
  var parts = String(path).split(".");
  var value = obj;
  for (var i = 0; i < parts.length; i++) {
    if (value === null || value === undefined) return undefined;
    value = value[parts[i]];
  }
  return value;
}

function __mp_accessor(spec) {
  if (typeof spec === "function") return spec;
  if (spec === undefined || spec === null) return function (x) { return x; };
  return function (x) { return __mp_path(x, spec); };
}

var __mp_cache = {};
var __mp_need = null;
var __MP_NEED_DATA = { toString: function () { return "__MP_NEED_DATA"; } };

function __mp_fetch(source, query) {
  var key = JSON.stringify([source, query || {}]);
  if (!(key in __mp_cache)) {
    __mp_need = key;
    throw __MP_NEED_DATA;
  }
  var reply = __mp_cache[key];
  if (reply.error) throw new Error(reply.error);
  return reply.rows;
}

function __mp_store(key, text) {
  __mp_cache[key] = JSON.parse(text);
}

function __mp_reduce(reducer, items) {
  if (Array.isArray(reducer)) {
    return reducer.map(function (r) { return __mp_reduce(r, items); });
  }
  if (typeof reducer !== "function") throw new TypeError("reducer must be a function");
  return reducer([], items);
}

function __mp_key_values(keys, item) {
  // One key tuple per combination: a key returning an array puts the item in each group.
  var tuples = [[]];
  for (var i = 0; i < keys.length; i++) {
    var v = keys[i](item);
    var options = Array.isArray(v) ? v : [v];
    var next = [];
    for (var t = 0; t < tuples.length; t++) {
      for (var o = 0; o < options.length; o++) next.push(tuples[t].concat([options[o]]));
    }
    tuples = next;
  }
  return tuples;
}

function __mp_compare(a, b) {
  if (a === b) return 0;
  if (a === undefined || a === null) return -1;
  if (b === undefined || b === null) return 1;
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  return String(a) < String(b) ? -1 : 1;
}

function Collection(items) { this._items = items; }

Collection.prototype.filter = function (fn) {
  return new Collection(this._items.filter(function (x) { return fn(x); }));
};
Collection.prototype.map = function (fn) {
  return new Collection(this._items.map(function (x) { return fn(x); }));
};
Collection.prototype.flatten = function () {
  var out = [];
  this._items.forEach(function (x) { if (Array.isArray(x)) out.push.apply(out, x); else out.push(x); });
  return new Collection(out);
};
Collection.prototype.sortAsc = function (key) {
  var get = __mp_accessor(key);
  return new Collection(this._items.slice().sort(function (a, b) { return __mp_compare(get(a), get(b)); }));
};
Collection.prototype.sortDesc = function (key) {
  var get = __mp_accessor(key);
  return new Collection(this._items.slice().sort(function (a, b) { return __mp_compare(get(b), get(a)); }));
};
Collection.prototype.groupBy = function (keys, reducer) {
  var getters = (Array.isArray(keys) ? keys : [keys]).map(__mp_accessor);
  var groups = {};
  var order = [];
  this._items.forEach(function (item) {
    __mp_key_values(getters, item).forEach(function (key) {
      var id = JSON.stringify(key.map(function (k) { return k === undefined ? null : k; }));
      if (!(id in groups)) { groups[id] = { key: key, items: [] }; order.push(id); }
      groups[id].items.push(item);
    });
  });
  order.sort();
  return new Collection(order.map(function (id) {
    var g = groups[id];
    return { key: g.key.map(function (k) { return k === undefined ? null : k; }), value: __mp_reduce(reducer, g.items) };
  }));
};
Collection.prototype.groupByUser = function (keys, reducer) {
  if (reducer === undefined) { reducer = keys; keys = []; }
  var getters = [function (x) { return x.distinct_id; }].concat(
    (Array.isArray(keys) ? keys : [keys]).map(__mp_accessor));
  return this.groupBy(getters, reducer);
};
Collection.prototype.reduce = function (reducer) {
  return new Collection([__mp_reduce(reducer, this._items)]);
};
Collection.prototype.toArray = function () { return this._items; };

function Events(query) {
  if (!query || !query.from_date || !query.to_date) {
    throw new Error("Events() needs from_date and to_date");
  }
  var q = {};
  for (var k in query) {
    var v = query[k];
    q[k] = v instanceof Date ? v.toISOString() : v;
  }
  return new Collection(__mp_fetch("events", q));
}

function People(query) {
  return new Collection(__mp_fetch("people", query || {}));
}

function join(events, people, options) {
  var type = (options && options.type) || "full";
  var users = {};
  var seen = {};
  people._items.forEach(function (u) { users[u.distinct_id] = u; });
  var out = [];
  events._items.forEach(function (e) {
    var u = users[e.distinct_id];
    seen[e.distinct_id] = true;
    if (u === undefined && (type === "inner" || type === "right")) return;
    var row = { distinct_id: e.distinct_id, event: e };
    if (u !== undefined) row.user = u;
    out.push(row);
  });
  if (type === "full" || type === "right") {
    people._items.forEach(function (u) {
      if (!seen[u.distinct_id]) out.push({ distinct_id: u.distinct_id, user: u });
    });
  }
  return new Collection(out);
}

function __mp_numbers(accessor, items) {
  var get = __mp_accessor(accessor);
  var out = [];
  items.forEach(function (x) {
    var v = get(x);
    if (typeof v === "number" && isFinite(v)) out.push(v);
  });
  return out;
}

var mixpanel = {
  reducer: {
    count: function () {
      return function (accs, items) {
        return accs.reduce(function (a, b) { return a + b; }, 0) + items.length;
      };
    },
    sum: function (accessor) {
      return function (accs, items) {
        return __mp_numbers(accessor, items).reduce(function (a, b) { return a + b; },
          accs.reduce(function (a, b) { return a + b; }, 0));
      };
    },
    avg: function (accessor) {
      return function (accs, items) {
        var xs = __mp_numbers(accessor, items);
        return xs.length ? xs.reduce(function (a, b) { return a + b; }, 0) / xs.length : 0;
      };
    },
    min: function (accessor) {
      return function (accs, items) {
        var xs = __mp_numbers(accessor, items);
        return xs.length ? Math.min.apply(null, xs) : null;
      };
    },
    max: function (accessor) {
      return function (accs, items) {
        var xs = __mp_numbers(accessor, items);
        return xs.length ? Math.max.apply(null, xs) : null;
      };
    },
    numeric_summary: function (accessor) {
      return function (accs, items) {
        var xs = __mp_numbers(accessor, items);
        var n = xs.length, sum = 0, squares = 0;
        xs.forEach(function (x) { sum += x; squares += x * x; });
        var avg = n ? sum / n : 0;
        var variance = n ? Math.max(0, squares / n - avg * avg) : 0;
        return { count: n, sum: sum, sum_squares: squares, avg: avg, stddev: Math.sqrt(variance) };
      };
    },
    any: function () {
      return function (accs, items) { return items.length ? items[0] : null; };
    },
    null: function () {
      return function () { return null; };
    },
  },
};

// One attempt at main(): the JSON result, or null when a query's rows are missing.
function __mp_run() {
  if (typeof main !== "function") throw new ReferenceError("main is not defined");
  __mp_need = null;
  var result;
  try {
    result = main();
  } catch (e) {
    if (e === __MP_NEED_DATA) return null;
    throw e;
  }
  if (result instanceof Collection) result = result._items;
  return JSON.stringify(Array.isArray(result) ? result : [result]);
}
