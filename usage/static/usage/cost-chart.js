/* Daily cost per model for the usage review: stacked bars on a calendar axis (every day of the
   range, empty ones too), a USD axis with grid lines, the day's total above its bar and a legend
   with each model's total. Data: the JSON in #cost-chart-data (usage.admin_review). No library. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceStep(max, ticks) {
    var raw = max / ticks, power = Math.pow(10, Math.floor(Math.log10(raw))), unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  }

  function usd(value, step) {
    var places = Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(step || 1))));
    return value.toFixed(places);
  }

  // The server's format (usage/formatting.py): 6 fixed decimals, thousands separated.
  function money(text) {
    var parts = Number(text).toFixed(6).split(".");
    return parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + parts[1];
  }

  function dayLabel(iso, withMonth) {
    var parts = iso.split("-"), day = String(Number(parts[2]));
    return withMonth ? MONTHS[Number(parts[1]) - 1] + " " + day : day;
  }

  function draw(container, data) {
    var days = data.days, series = data.series;
    var totals = days.map(function (_, i) {
      return series.reduce(function (sum, s) { return sum + parseFloat(s.values[i]); }, 0);
    });
    var peak = Math.max.apply(null, totals.concat([0]));
    var step = peak > 0 ? niceStep(peak, 4) : 1;
    var top = Math.max(step, Math.ceil(peak / step) * step);

    var width = 900, height = 300, left = 78, right = 12, upper = 24, lower = 56;
    var plotW = width - left - right, plotH = height - upper - lower;
    var slot = plotW / days.length, bar = Math.max(1, Math.min(slot * 0.8, 48));
    var y = function (v) { return upper + plotH - (v / top) * plotH; };
    var svg = el("svg", {viewBox: "0 0 " + width + " " + height, "font-size": "11", "font-family": "sans-serif"});

    // USD axis: grid lines and labels, and its title.
    for (var v = 0; v <= top + step / 2; v += step) {
      svg.appendChild(el("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: v ? "#ddd" : "#666"}));
      svg.appendChild(el("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", fill: "#333"}, usd(v, step)));
    }
    svg.appendChild(el("text", {
      x: 14, y: upper + plotH / 2, transform: "rotate(-90 14 " + (upper + plotH / 2) + ")",
      "text-anchor": "middle", fill: "#333", "class": "axis-title"
    }, "USD per day"));

    // Calendar axis: a slot per day; labels thinned to fit, months named where they start.
    var every = Math.max(1, Math.ceil(days.length / 16));
    days.forEach(function (iso, i) {
      var x = left + i * slot + (slot - bar) / 2, stack = 0;
      series.forEach(function (s) {
        var value = parseFloat(s.values[i]);
        if (!value) return;
        var rect = el("rect", {x: x, y: y(stack + value), width: bar, height: y(stack) - y(stack + value), fill: s.color});
        rect.appendChild(el("title", {}, iso + " " + s.model + ": " + money(s.values[i]) + " USD"));
        svg.appendChild(rect);
        stack += value;
      });
      var center = left + i * slot + slot / 2;
      var monthStart = iso.slice(8) === "01" || i === 0;
      if (i % every === 0 || monthStart && slot > 14) {
        svg.appendChild(el("line", {x1: center, x2: center, y1: upper + plotH, y2: upper + plotH + 4, stroke: "#666"}));
        svg.appendChild(el("text", {x: center, y: upper + plotH + 16, "text-anchor": "middle", fill: "#333",
          "class": "day-label"}, dayLabel(iso, monthStart || every > 1)));
      }
      var showValue = totals[i] > 0 && (slot >= 34 || totals[i] === peak);
      if (showValue) {
        svg.appendChild(el("text", {x: center, y: y(totals[i]) - 4, "text-anchor": "middle", fill: "#000",
          "class": "bar-value"}, money(totals[i])));
      }
    });
    svg.appendChild(el("text", {x: left + plotW / 2, y: height - 22, "text-anchor": "middle", fill: "#333",
      "class": "axis-title"}, "day (" + days[0] + " – " + days[days.length - 1] + ", " + days.length + (days.length === 1 ? " day)" : " days)")));

    // Legend: each model with its total over the range.
    var lx = left;
    series.forEach(function (s) {
      var sum = s.values.reduce(function (a, b) { return a + parseFloat(b); }, 0);
      var label = s.model + " " + money(sum) + " USD";
      svg.appendChild(el("rect", {x: lx, y: height - 12, width: 10, height: 10, fill: s.color}));
      svg.appendChild(el("text", {x: lx + 14, y: height - 3, fill: "#333", "class": "legend"}, label));
      lx += 24 + label.length * 6.5;
    });
    container.appendChild(svg);
  }

  function start() {
    var container = document.getElementById("cost-chart"), source = document.getElementById("cost-chart-data");
    if (!container || !source) return;
    var data = JSON.parse(source.textContent);
    if (data.days.length) draw(container, data);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
