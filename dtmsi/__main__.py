from dtmsi.entry import main

main()
