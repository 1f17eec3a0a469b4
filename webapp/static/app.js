// The admin's only script (the Content-Security-Policy allows no inline script): a <select data-autosubmit>
// submits its form when the choice changes (the header's «Сеть» selector; <noscript> has a button).
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
    target.form.submit();
  }
});
