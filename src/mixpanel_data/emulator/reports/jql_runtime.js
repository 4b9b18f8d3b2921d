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

function __mp_reduce(reducer, items, state) {
  if (Array.isArray(reducer)) {
    return reducer.map(function (r) { return __mp_reduce(r, items, state); });
  }
  if (typeof reducer !== "function") throw new TypeError("reducer must be a function");
  // groupBy/reduce hand a list of earlier results (none here); groupByUser hands the
  // user's previous state, undefined at the start (as the JQL guide's examples assume).
  return reducer(state === undefined ? [] : state.initial, items);
}

// Built-in reducers read earlier results from a list; groupByUser passes undefined.
function __mp_accs(accs) { return Array.isArray(accs) ? accs : []; }

function __mp_key_values(keys, item) {
  // One key tuple per combination. A key marked by mixpanel.multiple_keys() that returns a
  // list puts the item in one group per element; other list values are the key as they are
  // (the JQL guide, groupBy); mixpanel.slice() keys are spliced into the tuple.
  var tuples = [[]];
  for (var i = 0; i < keys.length; i++) {
    var v = keys[i](item);
    var next = [];
    for (var t = 0; t < tuples.length; t++) {
      if (keys[i].__mp_splice) {
        next.push(tuples[t].concat(Array.isArray(v) ? v : [v]));
        continue;
      }
      var options = keys[i].__mp_multiple && Array.isArray(v) ? v : [v];
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
function __mp_getters(keys) {
  var flat = [];
  (Array.isArray(keys) ? keys : [keys]).forEach(function (k) {
    if (Array.isArray(k)) flat.push.apply(flat, k); else flat.push(k);
  });
  return flat.map(__mp_accessor);
}

Collection.prototype.groupBy = function (keys, reducer, state) {
  var getters = __mp_getters(keys);
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
    return { key: g.key.map(function (k) { return k === undefined ? null : k; }), value: __mp_reduce(reducer, g.items, state) };
  }));
};
Collection.prototype.groupByUser = function (keys, reducer) {
  if (reducer === undefined) { reducer = keys; keys = []; }
  var getters = [function (x) { return x.distinct_id; }].concat(__mp_getters(keys));
  var byTime = this._items.slice().sort(function (a, b) { return (a.time || 0) - (b.time || 0); });
  return new Collection(byTime).groupBy(getters, reducer, { initial: undefined });
};
Collection.prototype.reduce = function (reducer) {
  return new Collection([__mp_reduce(reducer, this._items)]);
};
Collection.prototype.toArray = function () { return this._items; };
// groupBy rows in their current order, keeping at most limits[i] distinct values at key
// level i under each parent key, and at most `global` rows in all (the guide's example
// sorts by value first, so "top N" per group).
Collection.prototype.applyGroupLimits = function (limits, global) {
  var admitted = {};
  var children = {};
  var out = [];
  this._items.forEach(function (row) {
    if (global !== undefined && out.length >= global) return;
    var key = Array.isArray(row.key) ? row.key : [row.key];
    var fresh = [];
    for (var i = 0; i < key.length && i < limits.length; i++) {
      var id = JSON.stringify(key.slice(0, i + 1));
      if (admitted[id]) continue;
      var parent = JSON.stringify(key.slice(0, i));
      var taken = (children[parent] || 0) + fresh.filter(function (f) { return f.parent === parent; }).length;
      if (taken >= limits[i]) return;
      fresh.push({ id: id, parent: parent });
    }
    fresh.forEach(function (f) { admitted[f.id] = true; children[f.parent] = (children[f.parent] || 0) + 1; });
    out.push(row);
  });
  return new Collection(out);
};

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
        return __mp_accs(accs).reduce(function (a, b) { return a + b; }, 0) + items.length;
      };
    },
    sum: function (accessor) {
      return function (accs, items) {
        return __mp_numbers(accessor, items).reduce(function (a, b) { return a + b; },
          __mp_accs(accs).reduce(function (a, b) { return a + b; }, 0));
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
    min_by: function (accessor) {
      return function (accs, items) { return __mp_pick(accessor, items, -1); };
    },
    max_by: function (accessor) {
      return function (accs, items) { return __mp_pick(accessor, items, 1); };
    },
    top: function (limit) {
      return function (accs, items) {
        var sorted = items.slice().sort(function (a, b) { return __mp_compare(b.value, a.value); });
        return sorted.slice(0, limit);
      };
    },
    numeric_percentiles: function (accessor, percentiles) {
      return function (accs, items) {
        var xs = __mp_numbers(accessor, items).sort(function (a, b) { return a - b; });
        var at = function (p) {
          if (!xs.length) return null;
          var rank = (p / 100) * (xs.length - 1);
          var lo = Math.floor(rank), hi = Math.ceil(rank);
          return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo);
        };
        if (!Array.isArray(percentiles)) return at(percentiles);
        return percentiles.map(function (p) { return { percentile: p, value: at(p) }; });
      };
    },
    object_merge: function (accessor) {
      var get = __mp_accessor(accessor);
      return function (accs, items) {
        var out = {};
        items.forEach(function (x) { __mp_merge_into(out, get(x)); });
        return out;
      };
    },
  },
  // Key and accessor helpers from the guide's "JQL Builtins".
  multiple_keys: function (keys) {
    return (Array.isArray(keys) ? keys : [keys]).map(function (k) {
      var get = __mp_accessor(k);
      var marked = function (x) { return get(x); };
      marked.__mp_multiple = true;
      return marked;
    });
  },
  slice: function (accessor, start, limit) {
    var get = __mp_accessor(accessor);
    var sliced = function (x) {
      var v = get(x);
      return Array.isArray(v) ? v.slice(start, limit) : v;
    };
    sliced.__mp_splice = true;
    return sliced;
  },
  to_number: function (accessor) {
    var get = __mp_accessor(accessor);
    return function (x) {
      var v = get(x);
      if (typeof v === "number") return isFinite(v) ? v : undefined;
      if (typeof v === "boolean") return v ? 1 : 0;
      if (typeof v === "string" && v.trim() !== "") {
        var n = Number(v);
        return isFinite(n) ? n : undefined;
      }
      return undefined;
    };
  },
  numeric_bucket: function (accessor, spec) {
    var get = __mp_accessor(accessor);
    return function (x) {
      var v = get(x);
      if (typeof v !== "number" || !isFinite(v)) return undefined;
      return __mp_bucket(v, spec);
    };
  },
  daily_time_buckets: { __mp_calendar: "day" },
  weekly_time_buckets: { __mp_calendar: "week" },
  monthly_time_buckets: { __mp_calendar: "month" },
  quarterly_time_buckets: { __mp_calendar: "quarter" },
  annual_time_buckets: { __mp_calendar: "year" },
};

function __mp_pick(accessor, items, sign) {
  var get = __mp_accessor(accessor);
  var best = null, bestValue;
  items.forEach(function (x) {
    var v = get(x);
    if (typeof v !== "number" || !isFinite(v)) return;
    if (best === null || (sign < 0 ? v < bestValue : v > bestValue)) { best = x; bestValue = v; }
  });
  return best;
}

function __mp_merge_into(out, value) {
  if (value === null || typeof value !== "object") return;
  Object.keys(value).forEach(function (k) {
    var v = value[k];
    if (typeof v === "number" && typeof out[k] === "number") out[k] += v;
    else if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      if (out[k] === null || typeof out[k] !== "object") out[k] = {};
      __mp_merge_into(out[k], v);
    } else out[k] = v;
  });
}

// The lower bound of the bucket holding v: a list of boundaries, {bucket_size, offset},
// or a calendar spec (UTC days, Monday weeks, months, quarters, years; epoch ms).
function __mp_bucket(v, spec) {
  if (Array.isArray(spec)) {
    var lower = undefined;
    for (var i = 0; i < spec.length; i++) if (v >= spec[i]) lower = spec[i];
    return lower;
  }
  if (spec && spec.__mp_calendar) {
    var d = new Date(v);
    var y = d.getUTCFullYear(), m = d.getUTCMonth();
    switch (spec.__mp_calendar) {
      case "day": return Date.UTC(y, m, d.getUTCDate());
      case "week": return Date.UTC(y, m, d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
      case "month": return Date.UTC(y, m, 1);
      case "quarter": return Date.UTC(y, m - (m % 3), 1);
      default: return Date.UTC(y, 0, 1);
    }
  }
  var size = spec && spec.bucket_size, offset = (spec && spec.offset) || 0;
  if (typeof size !== "number" || !(size > 0)) throw new Error("numeric_bucket needs bucket_size > 0");
  return offset + Math.floor((v - offset) / size) * size;
}

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
