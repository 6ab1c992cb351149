(function () {
  "use strict";
  var state = { filter: "all", text: "" };
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card, a.thumb"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-filter]"));
  function apply() {
    cards.forEach(function (card) {
      var okStatus = state.filter === "all" || card.getAttribute("data-status") === state.filter;
      var okText = !state.text || card.getAttribute("data-label").indexOf(state.text) !== -1;
      card.classList.toggle("hidden", !(okStatus && okText));
    });
    buttons.forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === state.filter));
    });
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { state.filter = b.getAttribute("data-filter"); apply(); });
  });
  var search = document.getElementById("search");
  if (search) {
    search.addEventListener("input", function () { state.text = search.value.trim().toLowerCase(); apply(); });
  }
  apply();
})();
