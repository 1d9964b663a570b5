// Sends the sign-out form to the provider at once; without JavaScript, its button does.
document.getElementById('end-session')?.submit();
